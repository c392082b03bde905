"""A finished run's verdict, written once for every path (run, resume, score, merge).

The run's rules are evaluated (`gate.check_run`) on its numbers, and the verdict goes into
metrics.json, junit.xml and summary.md together, so that the three files and the exit code agree;
a full run that fails gets the diagnosis of its likely protocol mistake beside the verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ssd_eval.config.run import RunConfig
from ssd_eval.reports.baseline import Baseline
from ssd_eval.reports.ci_report import run_markdown, write_ci_files
from ssd_eval.reports.diagnosis import diagnose_run
from ssd_eval.reports.gate import GateReport, check_run
from ssd_eval.reports.results import RunResult, gate_facts, provenance, record_verdict


def gate_run(
    result: RunResult,
    config: RunConfig,
    baseline: Baseline | None,
    *,
    command: Sequence[str],
    started: str,
    verb: str,
) -> tuple[RunResult, GateReport]:
    """Apply the config's rules to a scored run and write its verdict into its folder."""
    report = check_run(gate_facts(result), expected=config.expected, gate=config.gate, baseline=baseline)
    # A full run that failed, or whose figures are not comparable (another protocol): name the
    # likely protocol mistake (None when nothing fits, or for a partial run or another model).
    diagnosis = diagnose_run(result, baseline) if report.verdict != "PASS" else None
    result = replace(result, diagnosis=diagnosis.to_json() if diagnosis is not None else None)
    result = record_verdict(result, report, provenance(started, command))
    folder = Path(result.run_dir)
    write_ci_files(folder, report, run_markdown(result, report), suite=f"ssd-eval {verb} {folder.name}")
    return result, report
