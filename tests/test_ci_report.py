"""JUnit XML and Markdown: they parse, name the failed rules, and say what ran."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ssd_eval.reports.ci_report import gate_markdown, junit_xml, table
from ssd_eval.reports.gate import GateCheck, GateReport, skipped_check


def _report() -> GateReport:
    return GateReport(
        (
            GateCheck("AP >= 0.1900", True, "cpu: AP 0.1950 >= 0.1900", subject="cpu"),
            GateCheck(
                "AP drop vs reference cpu <= 0.0050",
                False,
                'int8: AP 0.1800 vs ... <the> & "x"',
                subject="int8",
            ),
            skipped_check("AP drop vs baseline b <= 0.0030", "this run is partial"),
        )
    )


def test_junit_parses_and_names_failed_rules():
    root = ET.fromstring(junit_xml(_report(), suite="ssd-eval compare x", time_s=1.5))
    assert root.tag == "testsuites" and root.get("failures") == "1"
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        "ssd-eval compare x",
        "3",
        "1",
        "1",
    )
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases] == [
        "ssd_eval.gate.cpu",
        "ssd_eval.gate.int8",
        "ssd_eval.gate",
    ]
    failure = cases[1].find("failure")
    assert failure is not None and cases[1].get("name") == "AP drop vs reference cpu <= 0.0050"
    assert failure.get("message") == 'int8: AP 0.1800 vs ... <the> & "x"'  # escaped and read back intact
    skipped = cases[2].find("skipped")
    assert skipped is not None and skipped.get("message") == "this run is partial"
    assert cases[0].find("failure") is None


def test_empty_report_is_valid_junit():
    root = ET.fromstring(junit_xml(GateReport(), suite="s"))
    assert root.find("testsuite").get("tests") == "0"  # type: ignore[union-attr]


def test_markdown():
    lines = gate_markdown(_report())
    assert lines[0] == "**Gate: FAILED (1 of 3 rules)**"
    assert "- **FAIL**: `AP drop vs reference cpu <= 0.0050`" in lines[3]
    assert lines[4].startswith("- skipped: ")
    assert gate_markdown(GateReport()) == ["**Gate:** no rules set."]
    assert table(["a", "b"], [[1, "x|y"]]) == ["| a | b |", "| --- | --- |", "| 1 | x\\|y |"]
