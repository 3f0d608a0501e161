"""Decoder selection and field extraction with Wazuh 4.x semantics, on small inline decoder files."""

from __future__ import annotations

from pathlib import Path

import pytest

from threatlockdown.analysis.session import AnalysisSession
from threatlockdown.errors import SourceErrors
from threatlockdown.ruleset.event import Event
from threatlockdown.ruleset.loader import Ruleset, RulesetSources, load_ruleset

NO_RULES = '<group name="none"><rule id="100" level="0"><match>^never-matches$</match></rule></group>'


def load(tmp_path: Path, decoders: str | dict[str, str], rules: str = NO_RULES) -> Ruleset:
    """Write decoder files (name -> text, loaded in name order) and one rule file, then load them."""
    ddir, rdir = tmp_path / "decoders", tmp_path / "rules"
    ddir.mkdir(exist_ok=True)
    rdir.mkdir(exist_ok=True)
    files = decoders if isinstance(decoders, dict) else {"local_decoder.xml": decoders}
    for name, text in files.items():
        (ddir / name).write_text(text, encoding="utf-8")
    (rdir / "local_rules.xml").write_text(rules, encoding="utf-8")
    return load_ruleset(RulesetSources(decoder_dirs=(str(ddir),), rule_dirs=(str(rdir),), home=tmp_path))


def decode(ruleset: Ruleset, line: str) -> Event:
    return AnalysisSession(ruleset, manager_name="mgr").process(line).event


def syslog(program: str, message: str) -> str:
    return f"Mar  3 10:00:00 web1 {program}: {message}"


def load_errors(tmp_path: Path, decoders: str) -> list[str]:
    with pytest.raises(SourceErrors) as info:
        load(tmp_path, decoders)
    return [str(e) for e in info.value.errors]


# ---------------------------------------------------------------- choosing the parent


def test_parent_chosen_by_program_name(tmp_path: Path) -> None:
    rs = load(tmp_path, '<decoder name="app"><program_name>^myapp</program_name></decoder>')
    assert decode(rs, syslog("myapp[12]", "hello")).decoder_name == "app"
    assert decode(rs, syslog("myapp-worker", "hello")).decoder_name == "app"  # ^ anchors the start only
    assert decode(rs, syslog("otherapp", "hello")).decoder_name == ""


def test_parent_chosen_by_prematch_on_the_message(tmp_path: Path) -> None:
    rs = load(tmp_path, '<decoder name="kv"><prematch>^ACCESS </prematch></decoder>')
    assert decode(rs, "ACCESS granted to bob").decoder_name == "kv"
    # The prematch sees the message after the header, not the header itself.
    assert decode(rs, syslog("app", "ACCESS granted")).decoder_name == "kv"
    assert decode(rs, syslog("app", "NO ACCESS granted")).decoder_name == ""


def test_first_matching_parent_wins_without_fallback(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        """
        <decoder name="first"><program_name>^app</program_name></decoder>
        <decoder name="first-child">
          <parent>first</parent>
          <prematch>^foo </prematch>
          <regex>^foo (\\S+)</regex>
          <order>a</order>
        </decoder>
        <decoder name="second"><program_name>^app</program_name></decoder>
        <decoder name="second-child">
          <parent>second</parent>
          <prematch>^bar </prematch>
          <regex>^bar (\\S+)</regex>
          <order>b</order>
        </decoder>
        """,
    )
    ev = decode(rs, syslog("app", "bar value"))
    # "first" matched the program name; none of its children matched, and "second" is never tried.
    assert (ev.decoder_name, ev.decoder_parent, ev.fields) == ("first", "", {})
    ev = decode(rs, syslog("app", "foo value"))
    assert (ev.decoder_name, ev.fields) == ("first", {"a": "value"})


def test_parent_whose_prematch_fails_lets_the_next_parent_try(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        """
        <decoder name="one"><program_name>^app</program_name><prematch>^one </prematch></decoder>
        <decoder name="two"><program_name>^app</program_name><prematch>^two </prematch></decoder>
        """,
    )
    assert decode(rs, syslog("app", "two things")).decoder_name == "two"
    assert decode(rs, syslog("app", "three things")).decoder_name == ""


def test_prematch_only_parent_applies_to_events_with_a_program_name(tmp_path: Path) -> None:
    # Like Wazuh's pam decoder taking "sshd[1]: pam_unix(sshd:auth): ..." before the sshd decoder.
    rs = load(
        tmp_path,
        {
            "0100-pam.xml": '<decoder name="pam"><prematch>^pam_unix</prematch></decoder>',
            "0200-sshd.xml": '<decoder name="sshd"><program_name>^sshd</program_name></decoder>',
        },
    )
    assert decode(rs, syslog("sshd[1]", "pam_unix(sshd:auth): authentication failure")).decoder_name == "pam"
    assert decode(rs, syslog("sshd[1]", "Accepted password for bob")).decoder_name == "sshd"


def test_load_order_decides_between_program_name_and_prematch_parents(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        {
            "0100-sshd.xml": '<decoder name="sshd"><program_name>^sshd</program_name></decoder>',
            "0200-pam.xml": '<decoder name="pam"><prematch>^pam_unix</prematch></decoder>',
        },
    )
    assert decode(rs, syslog("sshd[1]", "pam_unix(sshd:auth): authentication failure")).decoder_name == "sshd"


def test_program_name_parent_never_applies_to_events_without_a_program_name(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        '<decoder name="app"><program_name>app</program_name><prematch>app</prematch></decoder>'
        '<decoder name="fallback"><prematch>app</prematch></decoder>',
    )
    ev = decode(rs, "Mar  3 10:00:00 web1 app said hello")  # no "prog:" -> no program name
    assert ev.program_name == ""
    assert ev.decoder_name == "fallback"


def test_program_name_can_be_a_regex(tmp_path: Path) -> None:
    rs = load(tmp_path, '<decoder name="d"><program_name type="osregex">^app\\d+$</program_name></decoder>')
    assert decode(rs, syslog("app42", "x")).decoder_name == "d"
    assert decode(rs, syslog("app42x", "x")).decoder_name == ""


# ---------------------------------------------------------------- children


CHILDREN = """
<decoder name="svc"><prematch>^svc: </prematch></decoder>
<decoder name="svc-start">
  <parent>svc</parent>
  <prematch offset="after_parent">^start </prematch>
  <regex offset="after_prematch">^(\\S+)</regex>
  <order>unit</order>
</decoder>
<decoder name="svc-anchored">
  <parent>svc</parent>
  <prematch>^stop </prematch>
  <regex>(\\S+)$</regex>
  <order>unit</order>
</decoder>
<decoder name="svc-whole">
  <parent>svc</parent>
  <prematch>^svc: stop </prematch>
  <regex offset="after_prematch">^(\\S+)</regex>
  <order>unit</order>
</decoder>
"""


def test_child_prematch_with_after_parent_starts_after_the_parent_match(tmp_path: Path) -> None:
    ev = decode(load(tmp_path, CHILDREN), "svc: start nginx")
    assert (ev.decoder_name, ev.decoder_parent, ev.fields) == ("svc", "svc", {"unit": "nginx"})


def test_child_prematch_without_offset_sees_the_whole_message(tmp_path: Path) -> None:
    # "^stop " cannot match the message start "svc: stop ...": the next child, anchored on the whole
    # message, matches instead.
    ev = decode(load(tmp_path, CHILDREN), "svc: stop nginx")
    assert ev.fields == {"unit": "nginx"}
    assert ev.decoder_parent == "svc"


def test_parent_matched_but_no_child_keeps_the_parent_and_no_fields(tmp_path: Path) -> None:
    ev = decode(load(tmp_path, CHILDREN), "svc: reload nginx")
    assert (ev.decoder_name, ev.decoder_parent, ev.fields) == ("svc", "", {})


def test_regex_offsets_after_parent_after_prematch_and_whole_message(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        """
        <decoder name="p"><prematch>^tag=</prematch></decoder>
        <decoder name="c-parent">
          <parent>p</parent>
          <prematch>X</prematch>
          <regex offset="after_parent">^(\\w+)</regex>
          <order>after_parent</order>
        </decoder>
        <decoder name="c-prematch">
          <parent>p</parent>
          <prematch>Y</prematch>
          <regex offset="after_prematch">^(\\w+)</regex>
          <order>after_prematch</order>
        </decoder>
        <decoder name="c-none">
          <parent>p</parent>
          <prematch>Z</prematch>
          <regex>^(\\w+)</regex>
          <order>whole</order>
        </decoder>
        """,
    )
    assert decode(rs, "tag=alpha X beta").fields == {"after_parent": "alpha"}
    assert decode(rs, "tag=alpha Ygamma").fields == {"after_prematch": "gamma"}
    # No offset: the regex sees the whole message, whose first word is "tag" (= is not in \w).
    assert decode(rs, "tag=alpha Z").fields == {"whole": "tag"}


def test_prematch_alternatives_are_tried_in_order_over_the_whole_text(tmp_path: Path) -> None:
    # Wazuh's OS_Regex tries each alternative over the whole text in turn: "zzz" wins even though
    # "abc" occurs earlier, so after_parent starts after "zzz".
    rs = load(
        tmp_path,
        """
        <decoder name="p"><prematch>zzz|abc</prematch></decoder>
        <decoder name="c">
          <parent>p</parent><regex offset="after_parent">^ (\\w+)</regex><order>next</order>
        </decoder>
        """,
    )
    assert decode(rs, "abc zzz word").fields == {"next": "word"}


def test_regex_alternatives_capture_per_alternative(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        """
        <decoder name="p"><prematch>^conn </prematch></decoder>
        <decoder name="c">
          <parent>p</parent>
          <regex offset="after_parent">^from (\\S+) port (\\d+)$|^from (\\S+)$</regex>
          <order>srcip, srcport</order>
        </decoder>
        """,
    )
    assert decode(rs, "conn from 192.0.2.1 port 22").fields == {"srcip": "192.0.2.1", "srcport": "22"}
    assert decode(rs, "conn from 192.0.2.1").fields == {"srcip": "192.0.2.1"}


SAME_NAME = """
<decoder name="auth"><program_name>^auth</program_name></decoder>
<decoder name="auth-fail">
  <parent>auth</parent>
  <prematch>^fail </prematch>
  <regex offset="after_prematch">^user (\\S+) </regex>
  <order>user</order>
</decoder>
<decoder name="auth-fail">
  <parent>auth</parent>
  <regex offset="after_regex">^from (\\S+)</regex>
  <order>srcip</order>
</decoder>
<decoder name="auth-fail">
  <parent>auth</parent>
  <regex>port (\\d+)</regex>
  <order>srcport</order>
</decoder>
<decoder name="auth-other">
  <parent>auth</parent>
  <regex>^(\\S+)</regex>
  <order>action</order>
</decoder>
"""


def test_same_name_chain_runs_every_regex_each_continuing_after_the_previous(tmp_path: Path) -> None:
    ev = decode(load(tmp_path, SAME_NAME), syslog("auth", "fail user bob from 192.0.2.9 port 2222"))
    # "user" is stored as dstuser, as Wazuh does.
    assert ev.fields == {"dstuser": "bob", "srcip": "192.0.2.9", "srcport": "2222"}
    assert (ev.decoder_name, ev.decoder_parent) == ("auth", "auth")


def test_after_regex_really_starts_where_the_previous_regex_ended(tmp_path: Path) -> None:
    # "^from" is anchored: it only matches if the text handed to it starts right after "user bob ".
    ev = decode(load(tmp_path, SAME_NAME), syslog("auth", "fail user bob at from 192.0.2.9"))
    assert "srcip" not in ev.fields
    assert ev.fields["dstuser"] == "bob"


def test_failing_regex_in_a_chain_does_not_stop_the_rest_of_the_chain(tmp_path: Path) -> None:
    ev = decode(load(tmp_path, SAME_NAME), syslog("auth", "fail nobody port 7"))
    assert ev.fields == {"srcport": "7"}


def test_chain_whose_first_prematch_fails_is_skipped_as_a_whole(tmp_path: Path) -> None:
    # Without skipping, the second "auth-fail" (no prematch) would be taken; Wazuh goes on to the next
    # child with a different name instead.
    ev = decode(load(tmp_path, SAME_NAME), syslog("auth", "login from 192.0.2.9 port 2222"))
    assert ev.fields == {"action": "login"}


def test_after_regex_after_a_failed_member_continues_from_the_last_success(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        """
        <decoder name="p"><prematch>^ev </prematch></decoder>
        <decoder name="c">
          <parent>p</parent>
          <prematch>^ev </prematch>
          <regex offset="after_prematch">^a=(\\w+) </regex>
          <order>a</order>
        </decoder>
        <decoder name="c">
          <parent>p</parent>
          <regex offset="after_regex">^nothing-here=(\\w+)</regex>
          <order>b</order>
        </decoder>
        <decoder name="c">
          <parent>p</parent>
          <regex offset="after_regex">^c=(\\w+)</regex>
          <order>c</order>
        </decoder>
        """,
    )
    # The second member fails; the third still starts after "a=1 " (Wazuh keeps the last end).
    assert decode(rs, "ev a=1 c=3").fields == {"a": "1", "c": "3"}


def test_child_without_prematch_is_taken_immediately(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        """
        <decoder name="p"><program_name>^app</program_name></decoder>
        <decoder name="catch-all"><parent>p</parent><regex>^(\\S+)</regex><order>first_word</order></decoder>
        <decoder name="never">
          <parent>p</parent><prematch>^special</prematch><regex>^(\\S+)</regex><order>x</order>
        </decoder>
        """,
    )
    ev = decode(rs, syslog("app", "special thing"))
    assert ev.fields == {"first_word": "special"}
    # Wazuh only records a child as the decoder when its prematch matched: no "parent" here.
    assert (ev.decoder_name, ev.decoder_parent) == ("p", "")


def test_children_report_the_parent_name_unless_use_own_name(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        """
        <decoder name="p"><program_name>^app</program_name></decoder>
        <decoder name="own">
          <parent>p</parent><prematch>^own </prematch><use_own_name>true</use_own_name>
        </decoder>
        <decoder name="plain"><parent>p</parent><prematch>^plain </prematch></decoder>
        """,
        rules="""
        <group name="t">
          <rule id="100" level="3"><decoded_as>own</decoded_as><description>own name</description></rule>
          <rule id="101" level="3"><decoded_as>plain</decoded_as><description>never</description></rule>
          <rule id="102" level="3"><decoded_as>p</decoded_as><description>parent name</description></rule>
        </group>
        """,
    )
    session = AnalysisSession(rs, manager_name="mgr")
    own = session.process(syslog("app", "own x"))
    assert (own.event.decoder_name, own.event.decoder_parent) == ("own", "p")
    assert own.rule is not None and own.rule.id == "100"
    plain = session.process(syslog("app", "plain x"))
    assert (plain.event.decoder_name, plain.event.decoder_parent) == ("p", "p")
    # <decoded_as> compares the name the event shows: a child without use_own_name is "p".
    assert plain.rule is not None and plain.rule.id == "102"


def test_user_order_is_stored_as_dstuser_and_srcuser_stays(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        """
        <decoder name="p"><prematch>^su </prematch></decoder>
        <decoder name="c">
          <parent>p</parent><regex>^su (\\S+) to (\\S+)</regex><order>srcuser, user</order>
        </decoder>
        """,
    )
    ev = decode(rs, "su alice to root")
    assert ev.fields == {"srcuser": "alice", "dstuser": "root"}
    assert ev.user == "root"


def test_pcre2_patterns_in_prematch_and_regex(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        """
        <decoder name="p"><prematch type="pcre2">^(?:GET|POST) </prematch></decoder>
        <decoder name="c">
          <parent>p</parent>
          <regex type="pcre2" offset="after_parent">^(/[^ ?]*)(?:\\?\\S*)? HTTP/(\\d\\.\\d)$</regex>
          <order>url, protocol</order>
        </decoder>
        """,
    )
    assert decode(rs, "POST /login?x=1 HTTP/1.1").fields == {"url": "/login", "protocol": "1.1"}
    # pcre2 is case-sensitive unlike OS_Regex.
    assert decode(rs, "post /login HTTP/1.1").decoder_name == ""


def test_two_parents_sharing_a_name_both_get_the_children(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        """
        <decoder name="pam"><program_name>(pam_unix)$</program_name></decoder>
        <decoder name="pam"><prematch>^pam_unix</prematch></decoder>
        <decoder name="pam-fields">
          <parent>pam</parent><regex>rhost=(\\S+)</regex><order>srcip</order>
        </decoder>
        """,
    )
    by_program = decode(rs, syslog("sshd(pam_unix)[9]", "authentication failure; rhost=192.0.2.1"))
    by_prematch = decode(rs, syslog("sshd[9]", "pam_unix(sshd:auth): failure; rhost=192.0.2.2 user=x"))
    assert (by_program.decoder_name, by_program.fields) == ("pam", {"srcip": "192.0.2.1"})
    assert (by_prematch.decoder_name, by_prematch.fields) == ("pam", {"srcip": "192.0.2.2"})


# ---------------------------------------------------------------- JSON plugin


JSON_DECODERS = """
<decoder name="j"><prematch>^json: </prematch></decoder>
<decoder name="j-fields">
  <parent>j</parent>
  <plugin_decoder offset="after_parent">JSON_Decoder</plugin_decoder>
</decoder>
"""


def test_json_plugin_flattens_nested_keys_with_dots(tmp_path: Path) -> None:
    ev = decode(
        load(tmp_path, JSON_DECODERS),
        'json: {"srcip": "192.0.2.1", "alert": {"rule": {"id": 5712}, "ok": true}, "n": 3}',
    )
    assert ev.fields == {"srcip": "192.0.2.1", "alert.rule.id": "5712", "alert.ok": "true", "n": "3"}
    assert ev.srcip == "192.0.2.1"


def test_json_plugin_null_is_the_string_null_by_default(tmp_path: Path) -> None:
    # Wazuh 4.x: json_null_field defaults to "string".
    ev = decode(load(tmp_path, JSON_DECODERS), 'json: {"a": null, "b": "x"}')
    assert ev.fields == {"a": "null", "b": "x"}


@pytest.mark.parametrize(("mode", "expected"), [("discard", {"b": "x"}), ("string", {"a": "null", "b": "x"})])
def test_json_plugin_null_handling_modes(tmp_path: Path, mode: str, expected: dict[str, str]) -> None:
    decoders = JSON_DECODERS.replace(
        "</plugin_decoder>", f"</plugin_decoder><json_null_field>{mode}</json_null_field>"
    )
    assert decode(load(tmp_path, decoders), 'json: {"a": null, "b": "x"}').fields == expected


def test_json_plugin_ignores_text_that_is_not_a_json_object(tmp_path: Path) -> None:
    rs = load(tmp_path, JSON_DECODERS)
    for line in ("json: not json at all", 'json: {"unterminated": ', "json: [1, 2]"):
        ev = decode(rs, line)
        assert (ev.decoder_name, ev.fields) == ("j", {}), line


def test_json_plugin_then_same_name_regexes_still_run(tmp_path: Path) -> None:
    decoders = JSON_DECODERS + (
        '<decoder name="j-fields"><parent>j</parent>'
        '<regex type="pcre2">"user":\\s*"([^"]+)"</regex><order>dstuser</order></decoder>'
    )
    ev = decode(load(tmp_path, decoders), 'json: {"k": "v", "user": "mallory"}')
    assert ev.fields == {"k": "v", "user": "mallory", "dstuser": "mallory"}


# ---------------------------------------------------------------- variables


def test_variables_are_substituted_in_decoder_patterns(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        '<var name="GREETING">hello|hi</var><decoder name="g"><prematch>^$GREETING</prematch></decoder>',
    )
    # The value is pasted as text, giving "^hello|hi": the second alternative is not anchored.
    assert decode(rs, "hello there").decoder_name == "g"
    assert decode(rs, "oh hi").decoder_name == "g"
    assert decode(rs, "hey there").decoder_name == ""


# ---------------------------------------------------------------- errors


def test_unknown_element_is_reported_with_file_and_line(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path,
        '<decoder name="d">\n  <prematch>^x</prematch>\n  <progam_name>typo</progam_name>\n</decoder>\n',
    )
    assert len(errors) == 1
    assert "local_decoder.xml:3: <progam_name>:" in errors[0]
    assert "unknown element" in errors[0]


def test_unknown_parent_is_reported_with_file_and_line(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path,
        '<decoder name="a"><prematch>^a</prematch></decoder>\n\n'
        '<decoder name="b">\n  <parent>nope</parent>\n</decoder>\n',
    )
    assert len(errors) == 1
    assert "local_decoder.xml:4: <parent>:" in errors[0]  # the line of <parent> itself
    assert "unknown parent 'nope'" in errors[0]


def test_parent_defined_after_its_child_is_an_error(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path,
        '<decoder name="b"><parent>a</parent></decoder>\n'
        '<decoder name="a"><prematch>^a</prematch></decoder>\n',
    )
    assert any("unknown parent 'a'" in e and ":1:" in e for e in errors)


def test_bad_pattern_is_reported_with_file_line_and_element(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path,
        '<decoder name="d">\n  <prematch>^x</prematch>\n</decoder>\n'
        '<decoder name="e">\n  <parent>d</parent>\n  <regex>(\\S+</regex>\n</decoder>\n',
    )
    assert len(errors) == 1
    assert "local_decoder.xml:6: <regex>: invalid pattern" in errors[0]


def test_bad_pcre2_is_reported_with_file_line_and_element(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path, '<decoder name="d">\n  <prematch type="pcre2">(?P&lt;x</prematch>\n</decoder>'
    )
    assert len(errors) == 1
    assert "local_decoder.xml:2: <prematch>: invalid pattern" in errors[0]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("<decoder><prematch>^x</prematch></decoder>", "missing name"),
        ('<decoder name="d"><prematch offset="after_regex">^x</prematch></decoder>', "invalid offset"),
        ('<decoder name="d"><prematch>^x</prematch><regex offset="z">x</regex></decoder>', "invalid offset"),
        ('<decoder name="d"></decoder>', "no parent, program_name or prematch"),
        ('<decoder name="d"><prematch>^x</prematch><plugin_decoder>XML</plugin_decoder></decoder>', "plugin"),
        ('<decoder name="d"><prematch type="fancy">^x</prematch></decoder>', "unknown pattern type"),
        ("<rule id='1'/>", "unknown element in a decoder file"),
    ],
)
def test_other_decoder_errors_name_file_and_line(tmp_path: Path, body: str, needle: str) -> None:
    errors = load_errors(tmp_path, "\n" + body)
    assert any(needle in e and "local_decoder.xml:2:" in e for e in errors), errors


def test_every_error_of_a_file_is_reported_not_just_the_first(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path,
        '<decoder name="a"><bogus/></decoder>\n<decoder name="b"><parent>zz</parent></decoder>\n',
    )
    assert len(errors) == 2
