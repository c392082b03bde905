"""JUnit XML and Markdown: they parse, name the failed rules, and say what ran."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import TINY_GT
from helpers import save_table_detector, write_config

from ssd_eval.cli import main
from ssd_eval.reports.ci_report import gate_markdown, junit_xml, table
from ssd_eval.reports.gate import GateCheck, GateReport, not_comparable, skipped_check


def _report() -> GateReport:
    return GateReport(
        (
            GateCheck("AP >= 0.1900", "passed", "cpu: AP 0.1950 >= 0.1900", subject="cpu"),
            GateCheck(
                "AP drop vs reference cpu <= 0.0050",
                "failed",
                'int8: AP 0.1800 vs ... <the> & "x"',
                subject="int8",
            ),
            not_comparable("AP drop vs baseline b <= 0.0030", "partial run (limit 5)"),
        )
    )


def _cases(xml: str) -> tuple[ET.Element, list[ET.Element]]:
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    return suite, suite.findall("testcase")


def test_junit_parses_and_names_failed_rules():
    root = ET.fromstring(junit_xml(_report(), suite="ssd-eval compare x", time_s=1.5))
    assert root.tag == "testsuites" and root.get("failures") == "2"
    suite = root.find("testsuite")
    assert suite is not None
    # 3 rules and the verdict; the failed rule and the verdict FAIL are the 2 failures.
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        "ssd-eval compare x",
        "4",
        "2",
        "1",
    )
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases] == [
        "ssd_eval.gate.cpu",
        "ssd_eval.gate.int8",
        "ssd_eval.gate",
        "ssd_eval.gate",
    ]
    failure = cases[1].find("failure")
    assert failure is not None and cases[1].get("name") == "AP drop vs reference cpu <= 0.0050"
    assert failure.get("message") == 'int8: AP 0.1800 vs ... <the> & "x"'  # escaped and read back intact
    skipped = cases[2].find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "not comparable: partial run (limit 5)"
    assert cases[0].find("failure") is None
    verdict = cases[3].find("failure")
    assert cases[3].get("name") == "gate verdict" and verdict is not None
    assert verdict.get("message") == "FAIL: 1 of 3 rule(s) failed"


def test_no_verdict_fails_the_junit_only_when_required():
    suite, cases = _cases(junit_xml(GateReport(), suite="s"))
    assert suite.get("tests") == "1" and suite.get("failures") == "0" and suite.get("skipped") == "1"
    assert cases[0].find("skipped").get("message") == "NO VERDICT: no rules are set"  # type: ignore[union-attr]
    suite, cases = _cases(junit_xml(GateReport((skipped_check("r", "why"),), required=True), suite="s"))
    assert suite.get("failures") == "1" and cases[1].find("failure") is not None
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props == {"verdict": "NO VERDICT", "exit_code": "1"}


def test_markdown():
    lines = gate_markdown(_report())
    assert lines[0] == "**Gate: FAIL** — 1 of 3 rule(s) failed"
    assert lines[3].startswith("- **FAIL**: `AP drop vs reference cpu <= 0.0050`")
    assert lines[4].startswith("- not comparable: ")
    assert gate_markdown(GateReport()) == ["**Gate: NO VERDICT** — no rules are set"]
    assert table(["a", "b"], [[1, "x|y"]]) == ["| a | b |", "| --- | --- |", "| 1 | x\\|y |"]


# Undefined stats (issue 17): the tiny set has no object larger than 96x96, so pycocotools reports
# APl and ARl as -1 there; a summary shows them as n/a, never as a figure (nor a delta of -1 and -1).


def _perfect_run(tmp_path: Path, coco: Path, name: str) -> Path:
    model = save_table_detector(tmp_path / "perfect.onnx", coco, TINY_GT)
    config = write_config(tmp_path / "c.yaml", model, coco)
    assert main(["--config", str(config), "--run-name", name, "--quiet"]) == 0
    return tmp_path / "results" / name


def test_run_summary_shows_an_undefined_stat_as_n_a(tmp_path, tiny_coco):
    text = (_perfect_run(tmp_path, tiny_coco, "r") / "summary.md").read_text()
    assert (
        "| AP | AP50 | AP75 | APs | APm | APl | AR1 | AR10 | AR100 | ARs | ARm | ARl |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        "| 1.0000 | 1.0000 | 1.0000 | 1.0000 | 1.0000 | n/a "
        "| 1.0000 | 1.0000 | 1.0000 | 1.0000 | 1.0000 | n/a |\n"
    ) in text
    assert "-1.0000" not in text


def test_comparison_summary_shows_an_undefined_stat_and_its_delta_as_n_a(tmp_path, tiny_coco):
    first = _perfect_run(tmp_path, tiny_coco, "a")
    second = _perfect_run(tmp_path, tiny_coco, "b")
    out = tmp_path / "cmp"
    assert (
        main(["compare", str(first), str(second), "--output", str(out), "--run-name", "ab", "--quiet"]) == 0
    )
    text = (out / "ab" / "summary.md").read_text()
    assert "| APm | 1.0000 | 1.0000 (0.0000) |\n| APl | n/a | n/a (n/a) |\n" in text
    assert "| ARl | n/a | n/a (n/a) |\n" in text
    assert "-1.0000" not in text
