"""The rule tree and rule evaluation with Wazuh 4.x semantics, on small inline rule files.

Events are lines like ``t: failed login srcip=192.0.2.1 user=bob``: a test decoder takes every
``key=value`` it knows into the matching field, so each test states exactly what the rules see.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from threatlockdown.analysis.session import AgentInfo, AnalysisSession, ProcessResult
from threatlockdown.errors import SourceErrors
from threatlockdown.ruleset import correlation
from threatlockdown.ruleset.event import Event
from threatlockdown.ruleset.loader import Ruleset, RulesetSources, load_ruleset

# One chain member per field: a member whose regex fails does not stop the others.
_FIELDS = ("srcip", "dstip", "user", "srcuser", "action", "custom", "status")
DECODERS = '<decoder name="t"><prematch>^t: </prematch></decoder>\n' + "\n".join(
    f'<decoder name="t-fields"><parent>t</parent><regex type="pcre2">\\b{name}=(\\S+)</regex>'
    f"<order>{name}</order></decoder>"
    for name in _FIELDS
)
T0 = 1_700_000_000.0


@dataclass
class Clock:
    """Event time under the test's control."""

    now: float = T0

    def __call__(self, event: Event) -> float:
        return self.now


def load(tmp_path: Path, rules: str | dict[str, str], decoders: str = DECODERS) -> Ruleset:
    ddir, rdir = tmp_path / "decoders", tmp_path / "rules"
    ddir.mkdir(exist_ok=True)
    rdir.mkdir(exist_ok=True)
    (ddir / "test_decoders.xml").write_text(decoders, encoding="utf-8")
    files = rules if isinstance(rules, dict) else {"local_rules.xml": rules}
    for name, text in files.items():
        (rdir / name).write_text(text, encoding="utf-8")
    return load_ruleset(RulesetSources(decoder_dirs=(str(ddir),), rule_dirs=(str(rdir),), home=tmp_path))


def group(*rules: str, name: str = "test,") -> str:
    return f'<group name="{name}">\n' + "\n".join(rules) + "\n</group>\n"


def session(tmp_path: Path, rules: str | dict[str, str], clock: Clock | None = None) -> AnalysisSession:
    return AnalysisSession(load(tmp_path, rules), manager_name="mgr", clock=clock)


def rid(result: ProcessResult) -> str | None:
    return result.rule.id if result.rule is not None else None


def run(
    s: AnalysisSession, lines: list[str], clock: Clock | None = None, step: float = 1.0
) -> list[str | None]:
    out = []
    for line in lines:
        out.append(rid(s.process(line)))
        if clock is not None:
            clock.now += step
    return out


def load_errors(tmp_path: Path, rules: str) -> list[str]:
    with pytest.raises(SourceErrors) as info:
        load(tmp_path, rules)
    return [str(e) for e in info.value.errors]


# ---------------------------------------------------------------- the tree and sibling order


def test_siblings_level_zero_first_then_level_descending_ties_in_load_order_accuracy_zero_last(
    tmp_path: Path,
) -> None:
    rs = load(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>x</match></rule>',
            '<rule id="101" level="12" accuracy="0"><match>x</match></rule>',
            '<rule id="102" level="7"><match>x</match></rule>',
            '<rule id="103" level="0"><match>zero</match></rule>',
            '<rule id="104" level="7"><match>x</match></rule>',
            '<rule id="105" level="10"><match>x</match></rule>',
        ),
    )
    assert [r.sid for r in rs.rules.roots] == [103, 105, 102, 104, 100, 101]
    s = AnalysisSession(rs, manager_name="mgr")
    assert rid(s.process("t: x")) == "105"
    zero = s.process("t: x zero")
    assert rid(zero) == "103" and not zero.alert


def test_children_are_ordered_the_same_way(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        group(
            '<rule id="100" level="2"><match>t:</match></rule>',
            '<rule id="101" level="4"><if_sid>100</if_sid><match>a</match></rule>',
            '<rule id="102" level="9"><if_sid>100</if_sid><match>a</match></rule>',
            '<rule id="103" level="0"><if_sid>100</if_sid><match>quiet</match></rule>',
        ),
    )
    assert [r.sid for r in rs.rules.rules[100].children] == [103, 102, 101]
    s = AnalysisSession(rs, manager_name="mgr")
    assert run(s, ["t: a", "t: a quiet", "t: b"]) == ["102", "103", "100"]


def test_noalert_parent_is_never_the_result(tmp_path: Path) -> None:
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="0" noalert="1"><decoded_as>t</decoded_as></rule>',
            '<rule id="101" level="5"><if_sid>100</if_sid><match>failed</match></rule>',
        ),
    )
    ok = s.process("t: all good")
    assert (ok.rule, ok.alert) == (None, False)
    assert rid(s.process("t: failed")) == "101"


def test_level_zero_final_rule_gives_no_alert(tmp_path: Path) -> None:
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="5"><match>login</match></rule>',
            '<rule id="101" level="0"><if_sid>100</if_sid><match>trusted</match></rule>',
        ),
    )
    quiet = s.process("t: login trusted")
    assert rid(quiet) == "101"
    assert (quiet.alert, quiet.logged) == (False, False)
    loud = s.process("t: login")
    assert (rid(loud), loud.alert, loud.logged) == ("100", True, True)


def test_log_alert_level_filters_alerts_not_matches(tmp_path: Path) -> None:
    rs = load(tmp_path, group('<rule id="100" level="2"><match>x</match></rule>'))
    low = AnalysisSession(rs, manager_name="mgr", log_alert_level=3).process("t: x")
    assert (rid(low), low.alert) == ("100", False)


# ---------------------------------------------------------------- conditions


def test_several_match_elements_are_concatenated(tmp_path: Path) -> None:
    # Wazuh joins them: "foo|" + "bar" is the pattern "foo|bar".
    s = session(tmp_path, group('<rule id="100" level="3"><match>foo|</match><match>bar</match></rule>'))
    assert run(s, ["t: bar", "t: foo", "t: baz"]) == ["100", "100", None]


def test_match_and_regex_negate(tmp_path: Path) -> None:
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>login</match><match negate="yes">denied</match></rule>',
        ),
    )
    # The negation applies to the concatenated pattern "logindenied", so it only drops that text.
    assert run(s, ["t: login", "t: login denied"]) == ["100", "100"]
    (tmp_path / "b").mkdir()
    s = session(
        tmp_path / "b",
        group(
            '<rule id="100" level="3"><match negate="yes">denied</match></rule>',
            '<rule id="101" level="4"><regex negate="yes">^t: \\d+</regex><match>x</match></rule>',
        ),
    )
    assert run(s, ["t: denied", "t: fine", "t: 42 x", "t: ab x"]) == [None, "100", "100", "101"]


def test_match_is_case_insensitive_and_anchors_on_the_message(tmp_path: Path) -> None:
    s = session(tmp_path, group('<rule id="100" level="3"><match>^t: LOGIN</match></rule>'))
    assert run(s, ["t: login ok", "Mar  3 10:00:00 web1 app: t: login ok", "x t: login"]) == [
        "100",
        "100",
        None,
    ]


@pytest.mark.parametrize(
    ("element", "matching", "not_matching"),
    [
        ("<srcip>10.0.0.0/8</srcip>", ["10.1.2.3", "10.255.0.1"], ["11.0.0.1", "not-an-ip"]),
        ("<srcip>!10.0.0.0/8</srcip>", ["11.0.0.1", "192.0.2.1"], ["10.1.2.3"]),
        ("<srcip>192.0.2.7</srcip>", ["192.0.2.7"], ["192.0.2.70", "192.0.2.8"]),
        ("<srcip>10.0.0.0/8,!10.1.0.0/16</srcip>", ["10.2.0.1"], ["10.1.0.1", "192.0.2.1"]),
        ("<srcip>2001:db8::/32</srcip>", ["2001:db8::1", "2001:DB8:ffff::9"], ["2001:db9::1", "10.0.0.1"]),
        ("<srcip>10.0.0.0/8</srcip>", ["::ffff:10.1.2.3"], []),
    ],
)
def test_srcip_networks_negation_and_ipv6(
    tmp_path: Path, element: str, matching: list[str], not_matching: list[str]
) -> None:
    s = session(tmp_path, group(f'<rule id="100" level="3">{element}</rule>'))
    for ip in matching:
        assert rid(s.process(f"t: srcip={ip}")) == "100", ip
    for ip in not_matching:
        assert rid(s.process(f"t: srcip={ip}")) is None, ip
    assert rid(s.process("t: no address")) is None


def test_dstip(tmp_path: Path) -> None:
    s = session(tmp_path, group('<rule id="100" level="3"><dstip>192.0.2.0/24</dstip></rule>'))
    assert run(s, ["t: dstip=192.0.2.5", "t: srcip=192.0.2.5", "t: dstip=198.51.100.1"]) == [
        "100",
        None,
        None,
    ]


def test_user_compares_dstuser_else_srcuser(tmp_path: Path) -> None:
    s = session(tmp_path, group('<rule id="100" level="3"><user>^root$</user></rule>'))
    assert rid(s.process("t: user=root")) == "100"  # decoder order "user" is dstuser
    assert rid(s.process("t: srcuser=root")) == "100"
    assert rid(s.process("t: user=bob srcuser=root")) is None


def test_program_name_and_hostname(tmp_path: Path) -> None:
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="3"><program_name>^sshd$</program_name></rule>',
            '<rule id="101" level="4"><hostname>^db\\d$</hostname></rule>',
        ).replace("<hostname>", '<hostname type="osregex">'),
    )
    assert rid(s.process("Mar  3 10:00:00 web1 sshd[1]: t: x")) == "100"
    assert rid(s.process("Mar  3 10:00:00 db1 cron[1]: t: x")) == "101"
    assert rid(s.process("Mar  3 10:00:00 web1 cron[1]: t: x")) is None
    assert rid(s.process("t: no header at all")) is None
    # For agent events the hostname is the agent's name.
    agent = AgentInfo(id="001", name="db7", ip="192.0.2.50")
    assert rid(s.process("Mar  3 10:00:00 web1 cron[1]: t: x", agent=agent)) == "101"


def test_decoded_as(tmp_path: Path) -> None:
    s = session(tmp_path, group('<rule id="100" level="3"><decoded_as>t</decoded_as></rule>'))
    assert run(s, ["t: x", "u: x"]) == ["100", None]


def test_field_name_uses_os_regex(tmp_path: Path) -> None:
    s = session(tmp_path, group('<rule id="100" level="3"><field name="custom">^ab\\d+$</field></rule>'))
    assert run(s, ["t: custom=AB12", "t: custom=ab12x", "t: other=ab12"]) == ["100", None, None]


def test_status_and_action_static_fields(tmp_path: Path) -> None:
    s = session(
        tmp_path,
        group('<rule id="100" level="3"><action>^block$</action><status>^ok</status></rule>'),
    )
    assert run(s, ["t: action=block status=ok", "t: action=block", "t: action=allow status=ok"]) == [
        "100",
        None,
        None,
    ]


def test_variables_in_rules(tmp_path: Path) -> None:
    s = session(
        tmp_path,
        '<var name="BAD_WORDS">hack|exploit</var>\n<var name="OFFICE">192.0.2.0/24</var>\n'
        + group(
            '<rule id="100" level="3"><match>$BAD_WORDS</match></rule>',
            '<rule id="101" level="4"><srcip>$OFFICE</srcip></rule>',
        ),
    )
    assert run(s, ["t: an exploit", "t: srcip=192.0.2.3", "t: nothing"]) == ["100", "101", None]


# ---------------------------------------------------------------- what the result and alert carry


def test_options_are_visible_in_the_result_and_alert(tmp_path: Path) -> None:
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="5"><match>quiet</match><options>no_full_log</options></rule>',
            '<rule id="101" level="5"><match>nocount</match><options>no_counter</options></rule>',
            '<rule id="102" level="5"><match>nolog</match><options>no_log</options></rule>',
            '<rule id="103" level="5"><match>noar</match><options>no_ar</options>'
            "<options>alert_by_email</options></rule>",
        ),
    )
    quiet = s.process("t: quiet")
    assert "full_log" not in quiet.output() and "firedtimes" in quiet.output()["rule"]
    nocount = s.process("t: nocount")
    assert "firedtimes" not in nocount.output()["rule"] and "full_log" in nocount.output()
    nolog = s.process("t: nolog")
    assert (nolog.alert, nolog.logged) == (True, False)
    noar = s.process("t: noar")
    assert noar.rule is not None and noar.rule.options == frozenset({"no_ar", "alert_by_email"})
    assert noar.output()["rule"]["mail"] is True
    assert quiet.output()["rule"]["mail"] is False


def test_description_substitutes_decoded_fields(tmp_path: Path) -> None:
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="5"><match>x</match>'
            "<description>Blocked $(srcip) for $(dstuser) ($(missing))</description></rule>",
        ),
    )
    out = s.process("t: x srcip=192.0.2.1 user=bob").output()
    assert out["rule"]["description"] == "Blocked 192.0.2.1 for bob ()"


def test_mitre_ids_are_expanded_and_compliance_groups_split(tmp_path: Path) -> None:
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="5"><match>x</match>'
            "<mitre><id>T1110</id><id>T9999</id></mitre>"
            "<group>authentication_failed,pci_dss_10.2.4,pci_dss_10.2.5,gdpr_IV_35.7.d,hipaa_164.312.b,"
            "nist_800_53_AU.14,tsc_CC6.1,gpg13_7.8,</group></rule>",
            name="syslog,sshd,",
        ),
    )
    rule = s.process("t: x").output()["rule"]
    assert rule["mitre"] == {
        "id": ["T1110", "T9999"],
        "tactic": ["Credential Access"],
        "technique": ["Brute Force"],
    }
    assert rule["groups"] == ["syslog", "sshd", "authentication_failed"]
    assert rule["pci_dss"] == ["10.2.4", "10.2.5"]
    assert rule["gdpr"] == ["IV_35.7.d"]
    assert rule["hipaa"] == ["164.312.b"]
    assert rule["nist_800_53"] == ["AU.14"]
    assert rule["tsc"] == ["CC6.1"]
    assert rule["gpg13"] == ["7.8"]


# ---------------------------------------------------------------- if_sid, if_group, if_level


def test_if_sid_with_several_parents(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>alpha</match></rule>',
            '<rule id="101" level="3"><match>beta</match></rule>',
            '<rule id="102" level="6"><if_sid>100, 101</if_sid><match>bad</match></rule>',
        ),
    )
    assert rs.rules.rules[102] in rs.rules.rules[100].children
    assert rs.rules.rules[102] in rs.rules.rules[101].children
    s = AnalysisSession(rs, manager_name="mgr")
    assert run(s, ["t: alpha bad", "t: beta bad", "t: gamma bad", "t: alpha"]) == ["102", "102", None, "100"]


def test_if_group(tmp_path: Path) -> None:
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>login</match><group>authentication_failed,</group></rule>',
            '<rule id="101" level="3"><match>sudo</match><group>authentication_failed,</group></rule>',
            '<rule id="102" level="3"><match>other</match></rule>',
            '<rule id="103" level="9"><if_group>authentication_failed</if_group><user>^root$</user></rule>',
        ),
    )
    assert run(s, ["t: login user=root", "t: sudo user=root", "t: other user=root", "t: login user=bob"]) == [
        "103",
        "103",
        "102",
        "100",
    ]


def test_if_level(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>low</match></rule>',
            '<rule id="101" level="8"><match>high</match></rule>',
            '<rule id="102" level="12"><if_level>8</if_level><match>escalate</match></rule>',
        ),
    )
    assert rs.rules.rules[102] in rs.rules.rules[101].children
    assert rs.rules.rules[102] not in rs.rules.rules[100].children
    s = AnalysisSession(rs, manager_name="mgr")
    assert run(s, ["t: high escalate", "t: low escalate"]) == ["102", "100"]


def test_unknown_if_sid_is_a_warning_naming_file_and_line_not_a_crash(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>x</match></rule>',
            '<rule id="101" level="5">\n  <if_sid>100,999</if_sid>\n  <match>y</match>\n</rule>',
            '<rule id="102" level="5">\n  <if_sid>998</if_sid>\n</rule>',
        ),
    )
    warnings = [str(w) for w in rs.warnings]
    assert any("local_rules.xml:4" in w and "999" in w for w in warnings), warnings
    assert any("local_rules.xml:7" in w and "102" in w and "dropped" in w for w in warnings), warnings
    assert 101 in rs.rules.rules and 102 not in rs.rules.rules
    assert rid(AnalysisSession(rs, manager_name="mgr").process("t: x y")) == "101"


def test_duplicate_rule_id_is_an_error(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>a</match></rule>',
            '<rule id="100" level="4"><match>b</match></rule>',
        ),
    )
    assert len(errors) == 1
    assert "local_rules.xml:3: <rule>: duplicate rule id 100" in errors[0]
    assert "overwrite" in errors[0]


def test_overwrite_replaces_the_rule_but_keeps_its_place_in_the_tree(tmp_path: Path) -> None:
    rs = load(
        tmp_path,
        {
            "0010-base.xml": group(
                '<rule id="100" level="3"><match>t:</match></rule>',
                '<rule id="101" level="5"><if_sid>100</if_sid><match>old</match>'
                "<description>old</description></rule>",
                '<rule id="102" level="7"><if_sid>101</if_sid><match>child</match></rule>',
            ),
            "0020-local.xml": group(
                '<rule id="101" level="9" overwrite="yes"><if_sid>100</if_sid><match>new</match>'
                "<description>new</description></rule>",
            ),
        },
    )
    rule = rs.rules.rules[101]
    assert (rule.level, rule.description) == (9, "new")
    assert rs.rules.rules[100].children == [rule]
    assert [c.sid for c in rule.children] == [102]  # its children stay
    s = AnalysisSession(rs, manager_name="mgr")
    assert run(s, ["t: old", "t: new", "t: new child"]) == ["100", "101", "102"]
    assert rs.warnings == []


def test_frequency_without_if_matched_is_an_error(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>a</match></rule>',
            '<rule id="101" level="8" frequency="4">\n  <if_sid>100</if_sid>\n</rule>',
        ),
    )
    assert any("local_rules.xml:3: <rule>:" in e and "if_matched_sid" in e for e in errors), errors


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        ('<rule id="100" level="17"><match>a</match></rule>', "level=17 out of range"),
        ('<rule id="abc" level="3"><match>a</match></rule>', "id='abc' is not a number"),
        ('<rule level="3"><match>a</match></rule>', "missing id"),
        ('<rule id="100" level="3"><regex>(a</regex></rule>', "<regex>: invalid pattern"),
        ('<rule id="100" level="3"><srcip>10.0.0.300</srcip></rule>', "not an IP address"),
        ('<rule id="100" level="3"><optons>no_log</optons></rule>', "<optons>: unknown element"),
        ('<rule id="100" level="3"><options>no_logs</options></rule>', "unknown option 'no_logs'"),
        ('<rule id="100" level="3"><time>25 pm - 3 am</time></rule>', "invalid time range"),
        ('<rule id="100" level="3"><weekday>funday</weekday></rule>', "invalid weekday"),
        ('<rule id="100" level="3"><if_matched_sid>1 2</if_matched_sid></rule>', "exactly one rule id"),
    ],
)
def test_rule_errors_name_file_line_and_element(tmp_path: Path, rule: str, needle: str) -> None:
    errors = load_errors(tmp_path, group(rule))
    assert any(needle in e and "local_rules.xml:2:" in e for e in errors), errors


# ---------------------------------------------------------------- frequency (if_matched_sid)


FREQ = group(
    '<rule id="100" level="3"><match>fail</match></rule>',
    '<rule id="101" level="10" frequency="4" timeframe="60">'
    "<if_matched_sid>100</if_matched_sid><same_source_ip/></rule>",
)


def test_frequency_counts_the_current_event(tmp_path: Path) -> None:
    clock = Clock()
    s = session(tmp_path, FREQ, clock)
    results = [s.process("t: fail srcip=192.0.2.1") for _ in range(4)]
    assert [rid(r) for r in results] == ["100", "100", "100", "101"]
    last = results[-1]
    assert last.output()["rule"]["frequency"] == 4
    # Three earlier events, newest first as Wazuh writes previous_output.
    assert len(last.match.previous) == 3
    assert last.output()["previous_output"].count("\n") == 2


def test_frequency_only_counts_the_same_source_address(tmp_path: Path) -> None:
    clock = Clock()
    s = session(tmp_path, FREQ, clock)
    lines = [f"t: fail srcip=192.0.2.{1 + i % 2}" for i in range(7)]
    # .1 occurs at events 1, 3, 5, 7: the 7th completes four events of that address.
    assert run(s, lines, clock) == ["100"] * 6 + ["101"]
    (tmp_path / "other").mkdir()
    s = session(tmp_path / "other", FREQ, clock)
    assert run(s, [f"t: fail srcip=192.0.2.{i}" for i in range(1, 9)], clock) == ["100"] * 8


def test_same_source_ip_events_without_an_address_never_count(tmp_path: Path) -> None:
    clock = Clock()
    s = session(tmp_path, FREQ, clock)
    assert run(s, ["t: fail"] * 6, clock) == ["100"] * 6


def test_events_used_by_a_firing_do_not_count_again(tmp_path: Path) -> None:
    clock = Clock()
    s = session(tmp_path, FREQ, clock)
    out = run(s, ["t: fail srcip=192.0.2.1"] * 12, clock)
    # The firing event itself is not remembered under 100, so each firing needs four fresh events.
    assert out == ["100", "100", "100", "101"] * 3


def test_events_older_than_the_timeframe_do_not_count(tmp_path: Path) -> None:
    clock = Clock()
    s = session(tmp_path, FREQ, clock)
    line = "t: fail srcip=192.0.2.1"
    assert run(s, [line] * 3, clock, step=30) == ["100"] * 3  # at T0, +30, +60
    # At +90 the earlier events within 60 s are +30 and +60: three with this one, one short.
    assert rid(s.process(line)) == "100"
    clock.now += 1  # +91: +30 is now 61 s old; +60 and +90 remain
    assert rid(s.process(line)) == "100"
    clock.now += 1  # +92: +60, +90 and +91 with this one make four
    assert rid(s.process(line)) == "101"


def test_frequency_is_counted_per_agent_unless_global_frequency(tmp_path: Path) -> None:
    rules = group(
        '<rule id="100" level="3"><match>fail</match></rule>',
        '<rule id="101" level="10" frequency="4" timeframe="60"><if_matched_sid>100</if_matched_sid></rule>',
    )
    agents = [AgentInfo(id=f"00{i % 2 + 1}", name=f"a{i % 2 + 1}") for i in range(6)]
    s = session(tmp_path, rules, Clock())
    assert [rid(s.process("t: fail", agent=a)) for a in agents] == ["100"] * 6
    (tmp_path / "g").mkdir()
    s = session(
        tmp_path / "g", rules.replace("</if_matched_sid>", "</if_matched_sid><global_frequency/>"), Clock()
    )
    assert [rid(s.process("t: fail", agent=a)) for a in agents[:4]] == ["100", "100", "100", "101"]


def test_if_matched_group(tmp_path: Path) -> None:
    clock = Clock()
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>password</match><group>auth_fail,</group></rule>',
            '<rule id="101" level="3"><match>key</match><group>auth_fail,</group></rule>',
            '<rule id="102" level="3"><match>other</match></rule>',
            '<rule id="103" level="10" frequency="3" timeframe="60">'
            "<if_matched_group>auth_fail</if_matched_group><same_source_ip/></rule>",
        ),
        clock,
    )
    ip = "srcip=192.0.2.1"
    assert run(s, [f"t: password {ip}", f"t: other {ip}", f"t: key {ip}", f"t: password {ip}"], clock) == [
        "100",
        "102",
        "101",
        "103",
    ]


def test_only_the_final_rule_feeds_correlation(tmp_path: Path) -> None:
    clock = Clock()
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>fail</match></rule>',
            '<rule id="101" level="5"><if_sid>100</if_sid><match>root</match></rule>',
            '<rule id="102" level="10" frequency="3"><if_matched_sid>100</if_matched_sid></rule>',
        ),
        clock,
    )
    # Events ending at 101 do not count for 102, whose if_matched_sid is 100.
    assert run(s, ["t: fail root", "t: fail root", "t: fail"], clock) == ["101", "101", "100"]
    assert run(s, ["t: fail", "t: fail"], clock) == ["100", "102"]


def test_ignore_reports_the_parent_inside_the_window_then_the_rule_again(tmp_path: Path) -> None:
    clock = Clock()
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>fail</match></rule>',
            '<rule id="101" level="10" frequency="2" timeframe="600" ignore="30">'
            "<if_matched_sid>100</if_matched_sid></rule>",
        ),
        clock,
    )
    assert run(s, ["t: fail"] * 2, clock) == ["100", "101"]  # fired at T0+1
    inside = [s.process("t: fail") for _ in range(5)]
    clock.now += 1
    assert [rid(r) for r in inside] == ["100"] * 5
    assert all(r.alert and not r.match.previous for r in inside)
    clock.now = T0 + 40
    again = s.process("t: fail")
    assert rid(again) == "101" and again.match.previous


def test_firedtimes_is_counted_per_rule(tmp_path: Path) -> None:
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>a</match></rule>',
            '<rule id="101" level="3"><match>b</match></rule>',
        ),
    )
    counts = [(rid(r), r.match.firedtimes) for r in (s.process(f"t: {x}") for x in "aabab")]
    assert counts == [("100", 1), ("100", 2), ("101", 1), ("100", 3), ("101", 2)]
    assert s.process("t: b").output()["rule"]["firedtimes"] == 3
    # A new session starts from zero: sessions share no state.
    assert AnalysisSession(s.ruleset, manager_name="mgr").process("t: a").match.firedtimes == 1


def test_correlation_memory_stays_bounded(tmp_path: Path) -> None:
    engine = AnalysisSession(load(tmp_path, FREQ), manager_name="mgr").engine
    corr = engine.correlators[101]
    assert correlation.MAX_BUCKETS < 100_000  # premise: the flood below overflows the cap
    now = T0
    # Distinct addresses: nothing ever correlates and every event is remembered. Events are built
    # directly (no header parsing or decoding) to keep the test fast.
    for i in range(100_000):
        ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        event = Event(full_log="t: fail", location="test", log="t: fail", fields={"srcip": ip})
        assert engine.evaluate(event, now).rule is not None
        now += 0.0001  # 10 s in all: everything stays inside the 60 s timeframe
    assert len(corr.buckets) == correlation.MAX_BUCKETS
    assert corr.size() == correlation.MAX_BUCKETS  # one event per address
    # The oldest sources went first: the newest address is still there, the first one is not.
    assert ("000", "10.1.134.159") in corr.buckets and ("000", "10.0.0.0") not in corr.buckets
    # Once the timeframe has passed, the next event drops every stale bucket.
    event = Event(full_log="t: fail", location="test", log="t: fail", fields={"srcip": "192.0.2.1"})
    engine.evaluate(event, now + 61)
    assert corr.size() == 1


def test_correlation_bucket_of_one_source_is_capped(tmp_path: Path) -> None:
    # Four events complete the rule: a bucket never needs more than a few times that many.
    engine = AnalysisSession(
        load(tmp_path, FREQ.replace('frequency="4"', 'frequency="500"')), manager_name="m"
    ).engine
    corr = engine.correlators[101]
    for i in range(5000):
        event = Event(full_log="t: fail", location="test", log="t: fail", fields={"srcip": "192.0.2.1"})
        engine.evaluate(event, T0 + i * 0.001)
    assert corr.size() <= 499 * correlation.BUCKET_SLACK


# ---------------------------------------------------------------- lists


def write_list(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / "etc" / "lists" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_list_match_key_and_not_match_key(tmp_path: Path) -> None:
    write_list(tmp_path, "admins", "root:\nadmin:yes\n# comment\n")
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="5"><list field="user" lookup="match_key">etc/lists/admins</list></rule>',
            '<rule id="101" level="3">'
            '<list field="user" lookup="not_match_key">etc/lists/admins</list></rule>',
        ),
    )
    assert run(s, ["t: user=root", "t: user=admin", "t: user=bob", "t: user=comment", "t: nobody"]) == [
        "100",
        "100",
        "101",
        "101",
        None,
    ]


def test_list_address_match_key_with_cidr_and_dotted_prefixes(tmp_path: Path) -> None:
    write_list(tmp_path, "bad-ips", '192.0.2.7:\n10.20.:scanner\n172.16.0.0/12:\n"2001:db8::/48":v6\n')
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="8">'
            '<list field="srcip" lookup="address_match_key">etc/lists/bad-ips</list></rule>',
        ),
    )
    for ip in ("192.0.2.7", "10.20.3.4", "172.31.255.1", "2001:db8:0:1::5"):
        assert rid(s.process(f"t: srcip={ip}")) == "100", ip
    for ip in ("192.0.2.8", "10.21.0.1", "172.32.0.1", "2001:db8:1::1", "garbage"):
        assert rid(s.process(f"t: srcip={ip}")) is None, ip


def test_list_match_key_value(tmp_path: Path) -> None:
    write_list(tmp_path, "roles", "alice:admin\nbob:user\n")
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="8"><list field="user" lookup="match_key_value" check_value="^admin">'
            "etc/lists/roles</list></rule>",
        ),
    )
    assert run(s, ["t: user=alice", "t: user=bob", "t: user=carol"]) == ["100", None, None]


def test_missing_list_file_is_an_error_naming_the_rule_file(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path,
        group('<rule id="100" level="8"><list field="user">etc/lists/none</list></rule>'),
    )
    assert any("local_rules.xml:2: <list>:" in e and "cannot read" in e for e in errors), errors


# ---------------------------------------------------------------- time and weekday


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return time.mktime((year, month, day, hour, minute, 0, 0, 0, -1))


def test_time_of_day_and_weekday_use_the_event_clock(tmp_path: Path) -> None:
    clock = Clock()
    s = session(
        tmp_path,
        group(
            '<rule id="100" level="3"><match>login</match></rule>',
            '<rule id="101" level="6"><if_sid>100</if_sid><time>6 pm - 8:30 am</time></rule>',
            '<rule id="102" level="7"><if_sid>100</if_sid><weekday>weekends</weekday></rule>',
        ),
        clock,
    )
    cases = [
        (local(2024, 5, 6, 12), "100"),  # Monday noon
        (local(2024, 5, 6, 19), "101"),  # Monday 7 pm
        (local(2024, 5, 7, 7, 59), "101"),  # Tuesday before 8:30 am (range wraps midnight)
        (local(2024, 5, 7, 9), "100"),  # Tuesday 9 am
        (local(2024, 5, 4, 12), "102"),  # Saturday noon
        (local(2024, 5, 5, 23), "102"),  # Sunday night: both match, level 7 is tried first
    ]
    for when, expected in cases:
        clock.now = when
        assert rid(s.process("t: login")) == expected, time.ctime(when)


def test_negated_weekday(tmp_path: Path) -> None:
    clock = Clock(local(2024, 5, 4, 12))  # Saturday
    s = session(tmp_path, group('<rule id="100" level="3"><weekday>!weekends</weekday></rule>'), clock)
    assert rid(s.process("t: x")) is None
    clock.now = local(2024, 5, 8, 12)  # Wednesday
    assert rid(s.process("t: x")) == "100"
