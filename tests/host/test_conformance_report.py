"""The kit's reports: one verdict per requirement, as text, JUnit XML and JSON; the CLI's errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from host.conformance.cli import main
from host.conformance.report import Results, Verdict, dumps_json, junit_xml, text_report
from host.conformance.requirements import VEHICLE


def sample() -> Results:
    results = Results("vehicle")
    results.passed("VH-LINK-01")
    results.passed("VH-LINK-04")
    results.failed("VH-LINK-04", "reply R05 NAK to the kit's GRANT", ["  1.000 kit ok Q05 GRANT"])
    results.untestable("VH-APP-09", "the vehicle drew no more than the lowered grant")
    results.seconds = 12.5
    return results


def test_a_failure_wins_over_a_pass_and_every_requirement_has_one_verdict() -> None:
    outcomes = {o.requirement.id: o for o in sample().outcomes()}
    assert list(outcomes) == [r.id for r in VEHICLE]
    assert outcomes["VH-LINK-01"].verdict is Verdict.PASS
    assert outcomes["VH-LINK-04"].verdict is Verdict.FAIL
    assert outcomes["VH-LINK-04"].lines == ["  1.000 kit ok Q05 GRANT"]
    assert outcomes["VH-APP-09"].detail.startswith("the vehicle drew")
    assert outcomes["VH-PHY-01"].detail.startswith("not visible on the serial line")
    assert outcomes["VH-APP-03"].detail == "not reached in this run"
    with pytest.raises(KeyError):
        Results("vehicle").passed("ST-LINK-01")  # a station requirement is no vehicle's


def test_the_text_report_names_each_requirement_and_counts_them() -> None:
    text = text_report(sample())
    assert "VH-LINK-04  fail" in text and "-> reply R05 NAK" in text and "Q05 GRANT" in text
    assert f"{len(VEHICLE)} requirements: 1 pass, 1 fail, {len(VEHICLE) - 2} not testable" in text


def test_junit_has_one_case_per_requirement_with_failures_and_skips() -> None:
    suite = ET.fromstring(junit_xml(sample())).find("testsuite")
    assert suite is not None
    assert suite.get("tests") == str(len(VEHICLE)) and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    failure = cases["VH-LINK-04"].find("failure")
    assert failure is not None and "Q05 GRANT" in (failure.text or "")
    assert cases["VH-APP-09"].find("skipped") is not None
    assert list(cases["VH-LINK-01"]) == []


def test_json_carries_the_same_verdicts() -> None:
    data = json.loads(dumps_json(sample()))
    assert data["role"] == "vehicle" and data["counts"]["fail"] == 1
    by_id = {r["id"]: r for r in data["requirements"]}
    assert by_id["VH-LINK-04"]["verdict"] == "fail" and by_id["VH-LINK-04"]["lines"]


def test_a_missing_port_is_one_clear_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--role", "vehicle", "/dev/no-such-serial-port"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pev-conformance: ") and "/dev/no-such-serial-port" in err
