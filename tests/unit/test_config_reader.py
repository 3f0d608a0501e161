"""ossec.conf reader: every validation rule, with the exact message a user sees."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threatlockdown.config import (
    OssecConfig,
    default_config_path,
    load_config,
    read_config,
    read_config_text,
)
from threatlockdown.config.reader import SECTIONS
from threatlockdown.errors import SourceError, SourceErrors

FW = (
    "  <command>",
    "    <name>firewall-drop</name>",
    "    <executable>firewall-drop</executable>",
    "    <timeout_allowed>yes</timeout_allowed>",
    "  </command>",
)  # lines 2-6 when placed right after <ossec_config>


def doc(*lines: str) -> str:
    """Lines of a file; line N of the file is lines[N-1], which keeps expected line numbers obvious."""
    return "\n".join(lines)


def conf(*body: str) -> str:
    """<ossec_config> on line 1, the body from line 2."""
    return doc("<ossec_config>", *body, "</ossec_config>")


def errors_of(text: str) -> list[str]:
    config, errors = read_config_text(text, "ossec.conf")
    assert config is None, "expected the file to be rejected"
    assert errors
    return [str(e) for e in errors]


def load(text: str) -> OssecConfig:
    config, errors = read_config_text(text, "ossec.conf")
    assert [str(e) for e in errors] == []
    assert config is not None
    return config


def infos_of(text: str) -> list[str]:
    return [str(i) for i in load(text).infos]


# --- the shipped file -------------------------------------------------------------------------


def test_shipped_ossec_conf_is_valid() -> None:
    config, errors = read_config(default_config_path())
    assert errors == []
    assert config is not None
    assert config.infos == ()
    assert list(config.commands) == [
        "firewall-drop",
        "host-deny",
        "route-null",
        "disable-account",
        "restart-threatlockdown",
    ]
    assert [c.name for c in config.commands.values() if c.timeout_allowed] == list(config.commands)[:4]
    assert config.active_responses == ()  # the example is commented out
    assert [w.value for w in config.global_.white_list] == ["127.0.0.1", "::1", "^localhost.localdomain$"]
    assert config.global_.jsonout_output and config.global_.alerts_log
    assert config.alerts.log_alert_level == 3
    assert [(r.connection, r.port, r.protocol, r.allowed_ips) for r in config.remotes] == [
        ("syslog", 514, ("udp",), ("127.0.0.1",))
    ]
    assert config.ruleset.decoder_dirs == ("ruleset/decoders", "etc/decoders")
    assert config.ruleset.rule_dirs == ("ruleset/rules", "etc/rules")
    assert [(lf.log_format, lf.location, lf.filters) for lf in config.localfiles] == [
        ("syslog", "/var/log/auth.log", ()),
        ("journald", "journald", (("_SYSTEMD_UNIT", "^ssh.service$"),)),
        ("syslog", "logs/active-responses.log", ()),
    ]


def test_commented_example_in_shipped_file_is_valid_once_uncommented() -> None:
    text = default_config_path().read_text()
    start = text.index("<active-response>\n")  # the example, not the mention in a comment
    end = text.index("</active-response>") + len("</active-response>")
    example = text[start:end]
    enabled = text.replace("</ossec_config>", example + "\n</ossec_config>")
    config = load(enabled)
    (ar,) = config.active_responses
    assert (ar.command, ar.locations, ar.rules_id, ar.timeout) == (
        "firewall-drop",
        frozenset({"local"}),
        (5710,),
        100,
    )
    assert ar.name == "firewall-drop100"


# --- <command> ----------------------------------------------------------------------------------


def test_command_is_read_with_defaults() -> None:
    config = load(
        conf(
            "  <command>", "    <name>restart</name>", "    <executable>restart</executable>", "  </command>"
        )
    )
    cmd = config.commands["restart"]
    assert (cmd.executable, cmd.timeout_allowed, cmd.extra_args, cmd.expect) == ("restart", False, (), None)
    assert (cmd.path, cmd.line) == ("ossec.conf", 2)


def test_command_needs_name_and_executable() -> None:
    assert errors_of(conf("  <command>", "    <timeout_allowed>yes</timeout_allowed>", "  </command>")) == [
        "ossec.conf:2: <command>: missing <name>",
        "ossec.conf:2: <command>: missing <executable>",
    ]


def test_command_name_must_not_start_with_bang() -> None:
    assert errors_of(
        conf("  <command>", "    <name>!x</name>", "    <executable>x</executable>", "  </command>")
    ) == ["ossec.conf:3: <name>: command name '!x' must not start with '!'"]


@pytest.mark.parametrize("exe", ["bin/firewall-drop", "..", "a..b", "/usr/bin/x"])
def test_executable_is_a_plain_name(exe: str) -> None:
    text = conf("  <command>", "    <name>x</name>", f"    <executable>{exe}</executable>", "  </command>")
    assert errors_of(text) == [
        f"ossec.conf:4: <executable>: {exe!r} must be a plain name without '/' or '..' "
        "(it names a response, like a file in Wazuh's active-response/bin)"
    ]


def test_empty_values_are_errors() -> None:
    assert errors_of(
        conf("  <command>", "    <name></name>", "    <executable>x</executable>", "  </command>")
    ) == ["ossec.conf:3: <name>: value is empty"]


@pytest.mark.parametrize("value", ["Yes", "true", "1", ""])
def test_timeout_allowed_is_yes_or_no(value: str) -> None:
    text = conf(
        "  <command>",
        "    <name>x</name>",
        "    <executable>x</executable>",
        f"    <timeout_allowed>{value}</timeout_allowed>",
        "  </command>",
    )
    assert errors_of(text) == [
        f"ossec.conf:5: <timeout_allowed>: invalid value {value!r} (expected 'yes' or 'no')"
    ]


def test_duplicate_command_names() -> None:
    text = conf(*FW, *FW)
    assert errors_of(text) == [
        "ossec.conf:7: <command>: command 'firewall-drop' is already defined at line 2"
    ]


def test_element_given_twice_in_a_command() -> None:
    text = conf(
        "  <command>",
        "    <name>a</name>",
        "    <name>b</name>",
        "    <executable>x</executable>",
        "  </command>",
    )
    assert errors_of(text) == ["ossec.conf:4: <command>: <name> appears twice (first at line 3)"]


def test_unknown_element_in_command_suggests_the_close_one() -> None:
    text = conf(
        "  <command>",
        "    <name>x</name>",
        "    <executable>x</executable>",
        "    <timeout_alowed>yes</timeout_alowed>",
        "    <color>red</color>",
        "  </command>",
    )
    assert errors_of(text) == [
        "ossec.conf:5: <command>: unknown element <timeout_alowed> (did you mean <timeout_allowed>?)",
        "ossec.conf:6: <command>: unknown element <color>",
    ]


def test_extra_args_are_split_and_expect_is_noted() -> None:
    text = conf(
        "  <command>",
        "    <name>x</name>",
        "    <executable>x</executable>",
        "    <extra_args>-a  b   -c</extra_args>",
        "    <expect>srcip</expect>",
        "  </command>",
    )
    config = load(text)
    assert config.commands["x"].extra_args == ("-a", "b", "-c")
    assert config.commands["x"].expect == "srcip"
    assert [str(i) for i in config.infos] == ["ossec.conf:6: <expect>: ignored (deprecated since Wazuh 4.2)"]


# --- <active-response> --------------------------------------------------------------------------


def ar(*lines: str) -> str:
    """firewall-drop on lines 2-6, then an <active-response> whose first inner line is line 8."""
    return conf(*FW, "  <active-response>", *lines, "  </active-response>")


def test_active_response_is_read() -> None:
    config = load(
        ar(
            "    <command>firewall-drop</command>",
            "    <location>local</location>",
            "    <level>10</level>",
            "    <rules_group>authentication_failures,</rules_group>",
            "    <rules_id>5710, 5712 5716</rules_id>",
            "    <timeout>600</timeout>",
            "    <repeated_offenders>10,30</repeated_offenders>",
            "    <target>webservers</target>",
        )
    )
    (resp,) = config.active_responses
    assert resp.command == "firewall-drop"
    assert resp.locations == frozenset({"local"})
    assert (resp.level, resp.rules_group, resp.rules_id) == (
        10,
        "authentication_failures,",
        (5710, 5712, 5716),
    )
    assert (resp.timeout, resp.repeated_offenders, resp.target, resp.disabled) == (
        600,
        (10, 30),
        "webservers",
        False,
    )
    assert (resp.path, resp.line, resp.name) == ("ossec.conf", 7, "firewall-drop600")
    assert config.execd_repeated_offenders == (10, 30)


def test_active_response_needs_command_and_location() -> None:
    assert errors_of(ar("    <level>3</level>")) == [
        "ossec.conf:7: <active-response>: missing <command>",
        "ossec.conf:7: <active-response>: missing <location>",
    ]
    assert errors_of(conf("  <active-response/>")) == [
        "ossec.conf:2: <active-response>: missing <command>",
        "ossec.conf:2: <active-response>: missing <location>",
    ]


def test_unknown_command_suggests_the_close_one() -> None:
    text = ar("    <command>firewall-dorp</command>", "    <location>local</location>")
    assert errors_of(text) == [
        "ossec.conf:8: <active-response>: unknown command 'firewall-dorp' (did you mean 'firewall-drop'?)"
    ]


def test_command_defined_after_its_first_use() -> None:
    text = conf(
        "  <active-response>",
        "    <command>firewall-drop</command>",
        "    <location>local</location>",
        "  </active-response>",
        "  <active-response>",
        "    <command>firewall-drop</command>",
        "    <location>server</location>",
        "  </active-response>",
        *FW,
    )
    assert errors_of(text) == [
        "ossec.conf:10: <command>: command 'firewall-drop' is defined after its first use at line 3 "
        "(move this <command> above that <active-response>)"
    ]


def test_command_order_counts_across_roots() -> None:
    first = conf(*FW)
    second = conf(
        "  <active-response>",
        "    <command>firewall-drop</command>",
        "    <location>all</location>",
        "  </active-response>",
    )
    assert load(first + "\n" + second).active_responses[0].locations == {"all"}


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("local", {"local"}),
        ("server", {"server"}),
        ("AS", {"server"}),
        ("analysisd", {"server"}),
        ("analysis-server", {"server"}),
        ("all", {"all"}),
        ("any", {"all"}),
        ("Local", {"local"}),
        ("local, server", {"local", "server"}),
        ("defined-agent", {"defined-agent"}),
    ],
)
def test_location_keywords(location: str, expected: set[str]) -> None:
    text = ar(
        "    <command>firewall-drop</command>",
        f"    <location>{location}</location>",
        "    <agent_id>001</agent_id>",
    )
    config = load(text)
    assert config.active_responses[0].locations == expected


def test_unknown_location() -> None:
    text = ar("    <command>firewall-drop</command>", "    <location>locl</location>")
    assert errors_of(text) == ["ossec.conf:9: <location>: unknown location 'locl' (did you mean 'local'?)"]
    text = ar("    <command>firewall-drop</command>", "    <location>nowhere</location>")
    assert errors_of(text) == [
        "ossec.conf:9: <location>: unknown location 'nowhere' "
        "(expected one of server, local, defined-agent, all)"
    ]


def test_location_read_as_wazuh_does_with_a_notice() -> None:
    text = ar("    <command>firewall-drop</command>", "    <location>localhost</location>")
    config = load(text)
    assert config.active_responses[0].locations == {"local"}
    assert [str(i) for i in config.infos] == ["ossec.conf:9: <location>: 'localhost' is read as 'local'"]


def test_defined_agent_needs_agent_id() -> None:
    text = ar("    <command>firewall-drop</command>", "    <location>defined-agent</location>")
    assert errors_of(text) == [
        "ossec.conf:7: <active-response>: location 'defined-agent' needs an <agent_id>"
    ]


@pytest.mark.parametrize("agent_id", ["0", "000", "web01"])
def test_unusable_agent_id_drops_the_block_with_a_notice(agent_id: str) -> None:
    text = ar(
        "    <command>firewall-drop</command>",
        "    <location>defined-agent</location>",
        f"    <agent_id>{agent_id}</agent_id>",
    )
    config = load(text)
    assert config.active_responses == ()
    assert [str(i) for i in config.infos] == [
        f"ossec.conf:10: <agent_id>: {agent_id!r} is not an agent ID; this <active-response> is ignored, "
        "as Wazuh does (use location 'server' to run a response on the manager)"
    ]


def test_agent_id_without_defined_agent_is_noted() -> None:
    text = ar(
        "    <command>firewall-drop</command>",
        "    <location>local</location>",
        "    <agent_id>005</agent_id>",
    )
    assert infos_of(text) == ["ossec.conf:10: <agent_id>: ignored: only used with location 'defined-agent'"]


@pytest.mark.parametrize("level", ["21", "-1", "x", "3.5", ""])
def test_level_is_0_to_20(level: str) -> None:
    text = ar(
        "    <command>firewall-drop</command>",
        "    <location>local</location>",
        f"    <level>{level}</level>",
    )
    assert errors_of(text) == [
        f"ossec.conf:10: <level>: invalid value {level!r} (expected an integer from 0 to 20)"
    ]


def test_level_20_is_the_maximum() -> None:
    text = ar(
        "    <command>firewall-drop</command>", "    <location>local</location>", "    <level>20</level>"
    )
    assert load(text).active_responses[0].level == 20


@pytest.mark.parametrize(
    ("rules", "bad"), [("5710,x", "x"), ("5710;5712", "5710;5712"), ("0", "0"), ("-5", "-5")]
)
def test_rules_id_are_positive_integers(rules: str, bad: str) -> None:
    text = ar(
        "    <command>firewall-drop</command>",
        "    <location>local</location>",
        f"    <rules_id>{rules}</rules_id>",
    )
    assert errors_of(text) == [f"ossec.conf:10: <rules_id>: invalid rule ID {bad!r} in {rules!r}"]


def test_negative_timeout_is_rejected() -> None:
    text = ar(
        "    <command>firewall-drop</command>", "    <location>local</location>", "    <timeout>-60</timeout>"
    )
    assert errors_of(text) == [
        "ossec.conf:10: <timeout>: negative timeout '-60' (use 0 for a response that is never reverted)"
    ]


@pytest.mark.parametrize("timeout", ["10m", "abc", "1e3"])
def test_timeout_must_be_whole_seconds(timeout: str) -> None:
    text = ar(
        "    <command>firewall-drop</command>",
        "    <location>local</location>",
        f"    <timeout>{timeout}</timeout>",
    )
    assert errors_of(text) == [
        f"ossec.conf:10: <timeout>: invalid value {timeout!r} (expected a whole number of seconds)"
    ]


def test_timeout_forced_to_zero_when_command_does_not_allow_it() -> None:
    text = conf(
        "  <command>",
        "    <name>restart</name>",
        "    <executable>restart</executable>",
        "  </command>",
        "  <active-response>",
        "    <command>restart</command>",
        "    <location>server</location>",
        "    <timeout>100</timeout>",
        "  </active-response>",
    )
    config = load(text)
    assert config.active_responses[0].timeout == 0
    assert config.active_responses[0].name == "restart0"
    assert [str(i) for i in config.infos] == [
        "ossec.conf:9: <timeout>: command 'restart' does not have <timeout_allowed>yes</timeout_allowed>: "
        "timeout 100 is ignored and the response is never reverted"
    ]


@pytest.mark.parametrize(("value", "bad"), [("10,x", "x"), ("0", "0"), ("-1", "-1"), ("5.5", "5.5")])
def test_repeated_offenders_are_positive_minutes(value: str, bad: str) -> None:
    text = ar(
        "    <command>firewall-drop</command>",
        "    <location>local</location>",
        f"    <repeated_offenders>{value}</repeated_offenders>",
    )
    assert errors_of(text) == [
        f"ossec.conf:10: <repeated_offenders>: invalid number of minutes {bad!r} in {value!r}"
    ]


def test_repeated_offenders_beyond_five_are_dropped_with_a_notice() -> None:
    text = ar(
        "    <command>firewall-drop</command>",
        "    <location>local</location>",
        "    <repeated_offenders>1, 2,3,4,5,6</repeated_offenders>",
    )
    config = load(text)
    assert config.active_responses[0].repeated_offenders == (1, 2, 3, 4, 5)
    assert [str(i) for i in config.infos] == [
        "ossec.conf:10: <repeated_offenders>: "
        "only the first 5 values are used; the rest is ignored, as in Wazuh"
    ]


def test_execd_settings_block_is_not_a_response() -> None:
    # The usual agent-side blocks: nothing to bind, only what execd reads (first occurrence wins).
    text = conf(
        "  <active-response>",
        "    <disabled>no</disabled>",
        "    <ca_store>etc/wpk_root.pem</ca_store>",
        "    <ca_verification>yes</ca_verification>",
        "  </active-response>",
        "  <active-response>",
        "    <repeated_offenders>30,60</repeated_offenders>",
        "  </active-response>",
        "  <active-response>",
        "    <repeated_offenders>5</repeated_offenders>",
        "  </active-response>",
    )
    config = load(text)
    assert config.active_responses == ()
    assert config.execd_repeated_offenders == (30, 60)
    assert config.execd_disabled is False
    assert config.infos == ()


def test_repeated_offenders_with_half_a_response_is_noted() -> None:
    text = ar("    <command>firewall-drop</command>", "    <repeated_offenders>30</repeated_offenders>")
    config = load(text)
    assert config.active_responses == ()
    assert [str(i) for i in config.infos] == [
        "ossec.conf:7: <active-response>: block without both <command> and <location>: "
        "only its <repeated_offenders> is used"
    ]


def test_disabled_block_is_kept_and_not_checked_further() -> None:
    text = ar(
        "    <disabled>yes</disabled>",
        "    <command>no-such-command</command>",
        "    <location>local</location>",
        "    <timeout>60</timeout>",
    )
    config = load(text)
    (resp,) = config.active_responses
    assert (resp.disabled, resp.command, resp.locations, resp.timeout) == (
        True,
        "no-such-command",
        frozenset({"local"}),
        60,
    )
    assert config.execd_disabled is True


def test_disabled_must_be_yes_or_no() -> None:
    text = ar(
        "    <disabled>off</disabled>",
        "    <command>firewall-drop</command>",
        "    <location>local</location>",
    )
    assert errors_of(text) == ["ossec.conf:8: <disabled>: invalid value 'off' (expected 'yes' or 'no')"]


def test_unknown_element_in_active_response() -> None:
    text = ar(
        "    <command>firewall-drop</command>", "    <location>local</location>", "    <tiemout>5</tiemout>"
    )
    assert errors_of(text) == [
        "ossec.conf:10: <active-response>: unknown element <tiemout> (did you mean <timeout>?)"
    ]


def test_empty_target_is_an_error() -> None:
    text = ar(
        "    <command>firewall-drop</command>", "    <location>local</location>", "    <target> </target>"
    )
    assert errors_of(text) == ["ossec.conf:10: <target>: value is empty"]


# --- <global> -----------------------------------------------------------------------------------


def glob(*lines: str) -> str:
    """A <global> block whose first inner line is line 3."""
    return conf("  <global>", *lines, "  </global>")


@pytest.mark.parametrize(
    "value",
    [
        "10.0.0.1",
        "!10.0.0.1",
        "10.0.0.0/8",
        "10.0.0.1/8",
        "192.168.0.0/255.255.0.0",
        "::1",
        "2001:db8::/32",
        "^localhost.localdomain$",
        "host.example.com",
        "1password.com",
    ],
)
def test_white_list_values_kept_as_written(value: str) -> None:
    (entry,) = load(glob(f"    <white_list>{value}</white_list>")).global_.white_list
    assert (entry.value, entry.line, entry.path) == (value, 3, "ossec.conf")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("300.1.1.1", "Octet 300 (> 255) not permitted in '300.1.1.1'"),
        ("10.0.0", "Expected 4 octets in '10.0.0'"),
        ("1.2.3.4/33", "'33' is not a valid netmask"),
        ("!1.2.3.4.5", "Expected 4 octets in '1.2.3.4.5'"),
        ("2001:db8:::1", "At most one '::' permitted in '2001:db8:::1'"),
    ],
)
def test_white_list_broken_address_is_an_error(value: str, problem: str) -> None:
    assert errors_of(glob(f"    <white_list>{value}</white_list>")) == [
        f"ossec.conf:3: <white_list>: {value!r} looks like an IP address but is not valid: {problem}"
    ]


def test_global_flags_and_other_elements() -> None:
    config = load(
        glob(
            "    <jsonout_output>no</jsonout_output>",
            "    <alerts_log>no</alerts_log>",
            "    <logall>yes</logall>",
            "    <logall_json>yes</logall_json>",
            "    <email_notification>yes</email_notification>",
            "    <email_to>a@example.com</email_to>",
            "    <email_to>b@example.com</email_to>",
            "    <email_maxperhour>12</email_maxperhour>",
            "    <agents_disconnection_time>10m</agents_disconnection_time>",
            "    <limits><eps><maximum>100</maximum></eps></limits>",
        )
    )
    g = config.global_
    assert (g.jsonout_output, g.alerts_log, g.logall, g.logall_json, g.email_notification) == (
        False,
        False,
        True,
        True,
        True,
    )
    assert g.other == {
        "email_to": "a@example.com,b@example.com",
        "email_maxperhour": "12",
        "agents_disconnection_time": "10m",
    }


def test_global_values_checked() -> None:
    text = glob(
        "    <logall>maybe</logall>",
        "    <email_maxperhour>0</email_maxperhour>",
        "    <jsonout>yes</jsonout>",
        "    <hostname>tld</hostname>",
    )
    assert errors_of(text) == [
        "ossec.conf:3: <logall>: invalid value 'maybe' (expected 'yes' or 'no')",
        "ossec.conf:4: <email_maxperhour>: invalid value '0' (expected a whole number from 1 to 1000000)",
        "ossec.conf:5: <global>: unknown element <jsonout> (did you mean <jsonout_output>?)",
        "ossec.conf:6: <global>: unknown element <hostname>",
    ]


def test_several_global_blocks_accumulate() -> None:
    text = conf(
        "  <global><white_list>10.0.0.1</white_list><logall>yes</logall></global>",
        "  <global><white_list>10.0.0.2</white_list><logall>no</logall></global>",
    )
    g = load(text).global_
    assert [w.value for w in g.white_list] == ["10.0.0.1", "10.0.0.2"]
    assert g.logall is False


# --- <alerts>, <ruleset>, <cluster> -------------------------------------------------------------


def test_alerts_levels() -> None:
    config = load(conf("  <alerts>", "    <log_alert_level>5</log_alert_level>", "  </alerts>"))
    assert (config.alerts.log_alert_level, config.alerts.email_alert_level) == (5, 12)
    assert errors_of(conf("  <alerts>", "    <log_alert_level>high</log_alert_level>", "  </alerts>")) == [
        "ossec.conf:3: <log_alert_level>: invalid value 'high' (expected a whole number)"
    ]


def test_ruleset() -> None:
    config = load(
        conf(
            "  <ruleset>",
            '    <decoder_dir pattern="_decoders.xml$">etc/decoders</decoder_dir>',
            "    <rule_dir>etc/rules</rule_dir>",
            "    <rule_include>etc/extra.xml</rule_include>",
            "    <rule_exclude>0215-policy_rules.xml</rule_exclude>",
            "    <decoder_include>etc/extra_decoders.xml</decoder_include>",
            "    <decoder_exclude>0005-wazuh_decoders.xml</decoder_exclude>",
            "    <list>etc/lists/audit-keys</list>",
            "  </ruleset>",
        )
    )
    rs = config.ruleset
    assert (rs.decoder_dirs, rs.rule_dirs) == (("etc/decoders",), ("etc/rules",))
    assert rs.decoder_dir_patterns == {"etc/decoders": "_decoders.xml$"}
    assert rs.rule_dir_patterns == {}
    assert (rs.rule_includes, rs.rule_excludes) == (("etc/extra.xml",), ("0215-policy_rules.xml",))
    assert (rs.decoder_includes, rs.decoder_excludes) == (
        ("etc/extra_decoders.xml",),
        ("0005-wazuh_decoders.xml",),
    )
    assert rs.lists == ("etc/lists/audit-keys",)


def test_ruleset_defaults_to_wazuh_directories() -> None:
    rs = load(conf()).ruleset
    assert (rs.decoder_dirs, rs.rule_dirs) == (("ruleset/decoders",), ("ruleset/rules",))


def test_ruleset_old_element_names_get_a_suggestion() -> None:
    assert errors_of(conf("  <ruleset>", "    <include>x.xml</include>", "  </ruleset>")) == [
        "ossec.conf:3: <ruleset>: unknown element <include> (did you mean <rule_include>?)"
    ]


def test_cluster_node_name_kept_and_other_sections_ignored() -> None:
    config = load(
        conf(
            "  <cluster>",
            "    <name>wazuh</name>",
            "    <node_name>manager-1</node_name>",
            "    <nodes><node>10.0.0.1</node></nodes>",
            "  </cluster>",
            '  <syscheck><directories check_all="yes">/etc</directories><anything/></syscheck>',
            '  <wodle name="syscollector"><disabled>no</disabled></wodle>',
            "  <sca><enabled>yes</enabled></sca>",
            "  <vulnerability-detection><enabled>no</enabled></vulnerability-detection>",
            "  <logging><log_format>plain</log_format></logging>",
            "  <auth><disabled>no</disabled></auth>",
        )
    )
    assert config.node_name == "manager-1"
    assert config.infos == ()


# --- <localfile> --------------------------------------------------------------------------------


def lf(*lines: str) -> str:
    """A <localfile> at line 2 whose first inner line is line 3."""
    return conf("  <localfile>", *lines, "  </localfile>")


def test_localfile_syslog() -> None:
    (source,) = load(
        lf("    <log_format>syslog</log_format>", "    <location>/var/log/auth.log</location>")
    ).localfiles
    assert (source.log_format, source.location, source.line, source.path) == (
        "syslog",
        "/var/log/auth.log",
        2,
        "ossec.conf",
    )


def test_localfile_needs_log_format_and_location() -> None:
    assert errors_of(lf("    <location>/var/log/auth.log</location>")) == [
        "ossec.conf:2: <localfile>: missing <log_format>"
    ]
    assert errors_of(lf("    <log_format>syslog</log_format>")) == [
        "ossec.conf:2: <localfile>: missing <location>"
    ]


def test_unknown_log_format() -> None:
    assert errors_of(lf("    <log_format>sylog</log_format>", "    <location>/x</location>")) == [
        "ossec.conf:3: <log_format>: unknown log format 'sylog' (did you mean 'syslog'?)"
    ]


def test_multi_line_count() -> None:
    (source,) = load(
        lf("    <log_format>multi-line: 3</log_format>", "    <location>/x</location>")
    ).localfiles
    assert (source.log_format, source.multiline_lines) == ("multi-line: 3", 3)
    assert errors_of(lf("    <log_format>multi-line: 0</log_format>", "    <location>/x</location>")) == [
        "ossec.conf:3: <log_format>: invalid value 'multi-line: 0' (expected 'multi-line: N', N >= 1)"
    ]


def test_command_log_format_needs_command() -> None:
    (source,) = load(
        lf("    <log_format>full_command</log_format>", "    <command>df -P</command>")
    ).localfiles
    assert (source.command, source.location) == ("df -P", None)
    assert errors_of(lf("    <log_format>command</log_format>", "    <location>/x</location>")) == [
        "ossec.conf:2: <localfile>: log format 'command' needs a <command>"
    ]


def test_journald_filters() -> None:
    (source,) = load(
        lf(
            "    <log_format>journald</log_format>",
            '    <filter field="_SYSTEMD_UNIT">^ssh.service$</filter>',
            '    <filter field="PRIORITY" ignore_if_missing="yes">[0-3]</filter>',
        )
    ).localfiles
    assert source.location == "journald"
    assert source.filters == (("_SYSTEMD_UNIT", "^ssh.service$"), ("PRIORITY", "[0-3]"))
    assert source.other == {"ignore_if_missing": "PRIORITY"}


def test_journald_filter_problems() -> None:
    assert errors_of(lf("    <log_format>journald</log_format>", "    <filter>^ssh$</filter>")) == [
        "ossec.conf:4: <filter>: missing the 'field' attribute (the journal field to test)"
    ]
    text = lf(
        "    <log_format>syslog</log_format>",
        "    <location>/x</location>",
        '    <filter field="A">b</filter>',
    )
    config = load(text)
    assert config.localfiles[0].filters == ()
    assert [str(i) for i in config.infos] == [
        "ossec.conf:5: <filter>: only used with log format 'journald'; ignored"
    ]


def test_journald_location_is_fixed() -> None:
    config = load(lf("    <log_format>journald</log_format>", "    <location>/var/log/journal</location>"))
    assert config.localfiles[0].location == "journald"
    assert [str(i) for i in config.infos] == [
        "ossec.conf:4: <location>: log format 'journald' always reads location 'journald'"
    ]


def test_localfile_other_elements() -> None:
    (source,) = load(
        lf(
            "    <log_format>json</log_format>",
            "    <location>/var/log/app.json</location>",
            '    <label key="@source">app</label>',
            "    <only-future-events>yes</only-future-events>",
            "    <frequency>hourly</frequency>",
            "    <age>1d</age>",
        )
    ).localfiles
    assert source.other == {
        "label:@source": "app",
        "only-future-events": "yes",
        "frequency": "hourly",
        "age": "1d",
    }


def test_localfile_value_checks() -> None:
    text = lf(
        "    <log_format>multi-line-regex</log_format>",
        "    <location>/x</location>",
        "    <ignore_binaries>sure</ignore_binaries>",
        "    <frequency>often</frequency>",
        "    <location>/y</location>",
    )
    assert errors_of(text) == [
        "ossec.conf:2: <localfile>: log format 'multi-line-regex' needs a <multiline_regex>",
        "ossec.conf:5: <ignore_binaries>: invalid value 'sure' (expected 'yes' or 'no')",
        "ossec.conf:6: <frequency>: invalid value 'often' (expected seconds, 'hourly' or 'daily')",
        "ossec.conf:7: <localfile>: <location> appears twice (first at line 4)",
    ]


# --- <remote> -----------------------------------------------------------------------------------


def remote(*lines: str) -> str:
    """A <remote> at line 2 whose first inner line is line 3."""
    return conf("  <remote>", *lines, "  </remote>")


def test_remote_defaults() -> None:
    (r,) = load(remote("    <connection>secure</connection>")).remotes
    assert (r.connection, r.port, r.protocol, r.line) == ("secure", 1514, ("tcp",), 2)
    (r,) = load(
        remote("    <connection>syslog</connection>", "    <allowed-ips>10.0.0.0/8</allowed-ips>")
    ).remotes
    assert (r.connection, r.port, r.protocol, r.allowed_ips) == ("syslog", 514, ("tcp",), ("10.0.0.0/8",))


def test_remote_full() -> None:
    (r,) = load(
        remote(
            "    <connection>syslog</connection>",
            "    <port>5140</port>",
            "    <protocol>UDP</protocol>",
            "    <allowed-ips>192.168.1.0/24</allowed-ips>",
            "    <allowed-ips>::1</allowed-ips>",
            "    <denied-ips>192.168.1.66</denied-ips>",
            "    <local_ip>192.168.1.1</local_ip>",
        )
    ).remotes
    assert (r.port, r.protocol, r.allowed_ips, r.denied_ips, r.local_ip) == (
        5140,
        ("udp",),
        ("192.168.1.0/24", "::1"),
        ("192.168.1.66",),
        "192.168.1.1",
    )


def test_remote_errors() -> None:
    text = remote(
        "    <connection>syslog</connection>",
        "    <port>70000</port>",
        "    <allowed-ips>10.0.0.300</allowed-ips>",
        "    <local_ip>10.0.0.0/8</local_ip>",
        "    <queue_size>1000</queue_size>",
    )
    assert errors_of(text) == [
        "ossec.conf:2: <remote>: a syslog <remote> needs at least one <allowed-ips>",
        "ossec.conf:4: <port>: invalid port '70000' (expected 1 to 65535)",
        "ossec.conf:5: <allowed-ips>: invalid IP address or network '10.0.0.300': "
        "Octet 300 (> 255) not permitted in '10.0.0.300'",
        "ossec.conf:6: <local_ip>: invalid IP address '10.0.0.0/8': Unexpected '/' in '10.0.0.0/8'",
        "ossec.conf:7: <queue_size>: only valid for a secure <remote>",
    ]


def test_remote_connection_required_and_checked() -> None:
    assert errors_of(remote("    <port>514</port>")) == [
        "ossec.conf:2: <remote>: missing <connection> ('syslog' or 'secure')"
    ]
    assert errors_of(remote("    <connection>tls</connection>")) == [
        "ossec.conf:3: <connection>: invalid value 'tls' (expected 'syslog' or 'secure')"
    ]


def test_remote_protocol_notices() -> None:
    text = remote(
        "    <connection>syslog</connection>",
        "    <protocol>tcp,udp,sctp</protocol>",
        "    <allowed-ips>any</allowed-ips>",
        "    <ipv6>maybe</ipv6>",
    )
    config = load(text)
    assert config.remotes[0].protocol == ("tcp",)
    assert [str(i) for i in config.infos] == [
        "ossec.conf:4: <protocol>: unknown protocol 'sctp' ignored",
        "ossec.conf:4: <protocol>: a syslog <remote> listens on one protocol; using tcp",
        "ossec.conf:6: <ipv6>: invalid value 'maybe' ignored (expected 'yes' or 'no')",
    ]


def test_one_secure_remote_and_no_port_clash() -> None:
    text = conf(
        "  <remote><connection>secure</connection></remote>",
        "  <remote><connection>secure</connection><port>1515</port></remote>",
        "  <remote><connection>syslog</connection><port>1514</port><allowed-ips>any</allowed-ips></remote>",
    )
    assert errors_of(text) == [
        "ossec.conf:3: <remote>: only one secure <remote> is allowed (first at line 2)",
        "ossec.conf:4: <remote>: port 1514/tcp is already used by the <remote> at line 2",
    ]


# --- the file as a whole ------------------------------------------------------------------------


def test_every_error_is_reported_in_line_order() -> None:
    text = conf(
        "  <active-response>",
        "    <command>nope</command>",
        "    <location>local</location>",
        "  </active-response>",
        "  <command><name>x</name></command>",
        "  <golbal/>",
    )
    assert errors_of(text) == [
        "ossec.conf:3: <active-response>: unknown command 'nope'",
        "ossec.conf:6: <command>: missing <executable>",
        "ossec.conf:7: <ossec_config>: unknown element <golbal> (did you mean <global>?)",
    ]


def test_several_roots_and_comments() -> None:
    text = doc(
        "<!-- first part -->",
        "<ossec_config>",
        "  <!-- <command> in a comment is not read -->",
        "  <global><white_list>10.1.1.1</white_list></global>",
        "</ossec_config>",
        "<ossec_config>",
        *FW,
        "</ossec_config>",
    )
    config = load(text)
    assert [w.value for w in config.global_.white_list] == ["10.1.1.1"]
    assert config.commands["firewall-drop"].line == 7


def test_top_level_must_be_ossec_config() -> None:
    assert errors_of(doc("<ossec_conf>", "</ossec_conf>")) == [
        "ossec.conf:1: <ossec_conf>: not allowed at the top level (expected <ossec_config>)"
    ]


def test_empty_and_rootless_files() -> None:
    assert errors_of("") == ["ossec.conf: file is empty (expected <ossec_config>)"]
    assert errors_of("  \n\n") == ["ossec.conf: file is empty (expected <ossec_config>)"]
    assert errors_of("<!-- nothing here -->\n") == ["ossec.conf: no <ossec_config> element found"]


def test_empty_ossec_config_is_valid() -> None:
    config = load("<ossec_config/>")
    assert (config.commands, config.active_responses, config.localfiles, config.remotes) == ({}, (), (), ())


def test_invalid_xml_names_the_line() -> None:
    (error,) = errors_of(
        doc("<ossec_config>", "  <global>", "    <logall>no</logal>", "  </global>", "</ossec_config>")
    )
    assert error.startswith("ossec.conf:3: XML syntax error: ")
    assert "logal" in error


def test_leaf_with_children_is_an_error() -> None:
    text = conf("  <command>", "    <name><b>x</b></name>", "    <executable>x</executable>", "  </command>")
    assert errors_of(text) == ["ossec.conf:3: <name>: expected a text value, found child element <b>"]


def test_read_config_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "candidate.xml"
    path.write_text(conf(*FW))
    config, errors = read_config(path)
    assert errors == []
    assert config is not None and config.path == str(path)
    assert config.commands["firewall-drop"].path == str(path)


def test_read_config_problems_with_the_file(tmp_path: Path) -> None:
    config, errors = read_config(tmp_path / "missing.conf")
    assert config is None
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'missing.conf'}: cannot read: No such file or directory"
    ]
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    assert [str(e) for e in read_config(empty)[1]] == [f"{empty}: file is empty (expected <ossec_config>)"]
    latin = tmp_path / "latin1.conf"
    latin.write_bytes(b"<ossec_config>\n<global><email_to>\xe9</email_to></global>\n</ossec_config>")
    assert [str(e) for e in read_config(latin)[1]] == [f"{latin}:2: invalid UTF-8"]


def test_load_config_raises_every_error(tmp_path: Path) -> None:
    path = tmp_path / "ossec.conf"
    path.write_text(conf("  <command/>", "  <golbal/>"))
    with pytest.raises(SourceErrors) as raised:
        load_config(path)
    assert [str(e) for e in raised.value.errors] == [
        f"{path}:2: <command>: missing <name>",
        f"{path}:2: <command>: missing <executable>",
        f"{path}:3: <ossec_config>: unknown element <golbal> (did you mean <global>?)",
    ]
    assert load_config(default_config_path()).commands


def test_a_typical_wazuh_manager_file_loads() -> None:
    # Written for this test in the shape of a Wazuh 4.x manager ossec.conf.
    text = doc(
        "<ossec_config>",
        "  <global>",
        "    <jsonout_output>yes</jsonout_output>",
        "    <alerts_log>yes</alerts_log>",
        "    <logall>no</logall>",
        "    <logall_json>no</logall_json>",
        "    <email_notification>no</email_notification>",
        "    <smtp_server>smtp.example.org</smtp_server>",
        "    <email_from>alerts@example.org</email_from>",
        "    <email_to>ops@example.org</email_to>",
        "    <email_maxperhour>12</email_maxperhour>",
        "    <email_log_source>alerts.log</email_log_source>",
        "    <agents_disconnection_time>10m</agents_disconnection_time>",
        "    <agents_disconnection_alert_time>0</agents_disconnection_alert_time>",
        "    <update_check>yes</update_check>",
        "    <white_list>127.0.0.1</white_list>",
        "    <white_list>^localhost.localdomain$</white_list>",
        "    <white_list>10.0.0.53</white_list>",
        "  </global>",
        "  <alerts><log_alert_level>3</log_alert_level><email_alert_level>12</email_alert_level></alerts>",
        "  <logging><log_format>plain</log_format></logging>",
        "  <remote>",
        "    <connection>secure</connection>",
        "    <port>1514</port>",
        "    <protocol>tcp</protocol>",
        "    <queue_size>131072</queue_size>",
        "  </remote>",
        "  <rootcheck><disabled>no</disabled><frequency>43200</frequency></rootcheck>",
        '  <wodle name="cis-cat"><disabled>yes</disabled></wodle>',
        "  <sca><enabled>yes</enabled><interval>12h</interval></sca>",
        "  <vulnerability-detection><enabled>yes</enabled></vulnerability-detection>",
        "  <indexer><enabled>yes</enabled><hosts><host>https://0.0.0.0:9200</host></hosts></indexer>",
        '  <syscheck><directories>/etc,/usr/bin</directories><ignore type="sregex">.log$</ignore></syscheck>',
        "  <command><name>disable-account</name><executable>disable-account</executable>"
        "<timeout_allowed>yes</timeout_allowed></command>",
        "  <command><name>restart-wazuh</name><executable>restart-wazuh</executable></command>",
        "  <command><name>firewall-drop</name><executable>firewall-drop</executable>"
        "<timeout_allowed>yes</timeout_allowed></command>",
        "  <command><name>win_route-null</name><executable>route-null.exe</executable>"
        "<timeout_allowed>yes</timeout_allowed></command>",
        "  <active-response>",
        "    <command>firewall-drop</command>",
        "    <location>local</location>",
        "    <rules_id>5712,5763</rules_id>",
        "    <timeout>180</timeout>",
        "  </active-response>",
        "  <ruleset>",
        "    <decoder_dir>ruleset/decoders</decoder_dir>",
        "    <rule_dir>ruleset/rules</rule_dir>",
        "    <rule_exclude>0215-policy_rules.xml</rule_exclude>",
        "    <list>etc/lists/audit-keys</list>",
        "    <decoder_dir>etc/decoders</decoder_dir>",
        "    <rule_dir>etc/rules</rule_dir>",
        "  </ruleset>",
        "  <rule_test><enabled>yes</enabled><threads>1</threads></rule_test>",
        "  <auth><disabled>no</disabled><port>1515</port></auth>",
        "  <cluster><name>wazuh</name><node_name>node01</node_name><disabled>yes</disabled></cluster>",
        "</ossec_config>",
        "<ossec_config>",
        "  <localfile><log_format>journald</log_format><location>journald</location></localfile>",
        "  <localfile><log_format>syslog</log_format>"
        "<location>/var/ossec/logs/active-responses.log</location></localfile>",
        "  <localfile><log_format>full_command</log_format><command>netstat -tulpn</command>"
        "<alias>netstat listening ports</alias><frequency>360</frequency></localfile>",
        "</ossec_config>",
    )
    config = load(text)
    assert len(config.commands) == 4
    assert config.active_responses[0].name == "firewall-drop180"
    assert config.node_name == "node01"
    assert len(config.localfiles) == 3


# --- never crash --------------------------------------------------------------------------------


def _check_outcome(config: OssecConfig | None, errors: list[SourceError]) -> None:
    assert all(isinstance(e, SourceError) for e in errors)
    assert all(str(e).startswith("fuzz") for e in errors)
    if config is None:
        assert errors
    else:
        assert errors == []
        assert all(isinstance(i, SourceError) and str(i) for i in config.infos)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_never_crashes(text: str) -> None:
    _check_outcome(*read_config_text(text, "fuzz"))


_NAMES = sorted(
    {
        *SECTIONS,
        "name",
        "executable",
        "timeout_allowed",
        "extra_args",
        "expect",
        "disabled",
        "command",
        "location",
        "agent_id",
        "level",
        "rules_group",
        "rules_id",
        "timeout",
        "repeated_offenders",
        "target",
        "white_list",
        "logall",
        "log_format",
        "filter",
        "label",
        "connection",
        "port",
        "protocol",
        "allowed-ips",
        "local_ip",
        "decoder_dir",
        "rule_dir",
        "node_name",
        "log_alert_level",
        "x",
        "ossec_config",
    }
)
_VALUES = st.one_of(
    st.sampled_from(
        [
            "yes",
            "no",
            "0",
            "20",
            "21",
            "-1",
            "5710,5712",
            "local",
            "server",
            "defined-agent",
            "firewall-drop",
            "127.0.0.1",
            "300.1.1.1",
            "::1",
            "10.0.0",
            "syslog",
            "secure",
            "journald",
            "multi-line: 3",
            "",
            " ",
        ]
    ),
    # Characters XML allows, so that most trees parse and reach the validators.
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20),
)
_ATTRS = st.dictionaries(
    st.sampled_from(["field", "pattern", "key", "ignore_if_missing", "name"]), _VALUES, max_size=2
)


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def render(parts: tuple[str, dict[str, str], str | list[str]]) -> str:
        tag, attrs, content = parts
        attr_text = "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
        inner = escape(content) if isinstance(content, str) else "\n".join(content)
        return f"<{tag}{attr_text}>{inner}</{tag}>"

    return st.tuples(st.sampled_from(_NAMES), _ATTRS, st.one_of(_VALUES, st.lists(children, max_size=5))).map(
        render
    )


_TREES = st.recursive(_VALUES.map(escape), _element, max_leaves=25)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TREES, max_size=8), st.booleans())
def test_random_element_trees_never_crash(sections: list[str], wrap: bool) -> None:
    body = "\n".join(sections)
    text = f"<ossec_config>\n{body}\n</ossec_config>" if wrap else body
    _check_outcome(*read_config_text(text, "fuzz"))
