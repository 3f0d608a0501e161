"""Reads Wazuh-style XML files: several root elements per file, comments, line numbers kept.

Wazuh's own parser accepts files such as ``<group>...</group><group>...</group>`` or repeated
``<ossec_config>`` roots, which are not well-formed XML documents. We wrap the text in a synthetic
root on the same line so that lxml's line numbers stay those of the user's file.
"""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from .errors import SourceError, SourceErrors

MAX_XML_BYTES = 16 * 1024 * 1024
_WRAPPER = "tld-wrapper"
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")


def _parser() -> etree.XMLParser:
    # No entity expansion, no network, no huge trees: rule files may come from anywhere.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        load_dtd=False,
    )


def parse_xml_text(text: str, path: str) -> list[etree._Element]:
    """Return the top-level elements of ``text``; raise SourceErrors naming ``path`` and the line."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_XML_BYTES:
        raise SourceErrors([SourceError(path, None, None, f"file larger than {MAX_XML_BYTES} bytes")])
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SourceErrors([SourceError(path, line, None, "NUL byte in XML file")])
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        first = min(i for i in (text.find("<!DOCTYPE"), text.find("<!ENTITY")) if i >= 0)
        line = text.count("\n", 0, first) + 1
        raise SourceErrors([SourceError(path, line, None, "DTDs and entities are not allowed")])
    # Keep the declaration's line count so numbers stay right.
    m = _XML_DECL.match(text)
    if m:
        text = "\n" * m.group(0).count("\n") + text[m.end() :]
    wrapped = f"<{_WRAPPER}>{text}</{_WRAPPER}>"
    try:
        root = etree.fromstring(wrapped.encode("utf-8", "surrogateescape"), _parser())
    except etree.XMLSyntaxError as exc:
        err_line: int | None = exc.lineno if exc.lineno else None
        msg = str(exc.msg) if exc.msg else str(exc)
        msg = msg.replace(_WRAPPER, "(end of file)")
        raise SourceErrors([SourceError(path, err_line, None, f"XML syntax error: {msg}")]) from None
    return [el for el in root if isinstance(el.tag, str)]


def read_xml_file(path: Path | str) -> list[etree._Element]:
    """Read a file and return its top-level elements; errors name the file and line."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            # Read one byte past the limit: enough to know it is too large without loading it all.
            data = fh.read(MAX_XML_BYTES + 1)
    except OSError as exc:
        raise SourceErrors([SourceError(str(p), None, None, f"cannot read: {exc.strerror}")]) from None
    if len(data) > MAX_XML_BYTES:
        raise SourceErrors([SourceError(str(p), None, None, f"file larger than {MAX_XML_BYTES} bytes")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceErrors([SourceError(str(p), line, None, "invalid UTF-8")]) from None
    return parse_xml_text(text, str(p))


def text_of(el: etree._Element) -> str:
    """The element's text, stripped, '' when empty (Wazuh trims values)."""
    return (el.text or "").strip()


def line_of(el: etree._Element) -> int | None:
    line = el.sourceline
    return int(line) if isinstance(line, int) and line > 0 else None


def raw_text_of(el: etree._Element) -> str:
    """The element's text as written: patterns keep leading and trailing spaces, as in Wazuh."""
    return el.text or ""
