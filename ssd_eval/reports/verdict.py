"""A finished run's verdict, written once for every path (run, resume, score, merge), and the records
the library returns for a gated run (`Evaluation`) and a gated comparison (`Comparison`).

The run's rules are evaluated (`gate.check_run`) on its numbers, and the verdict goes into
metrics.json, junit.xml and summary.md together, so that the three files and the exit code agree;
a full run that fails gets the diagnosis of its likely protocol mistake beside the verdict.

Who asked for a verdict is an `Invocation`: the command line of `ssd-eval`, or for a call from Python
the call itself, `("python", "ssd_eval.evaluate", "smoke.yaml", "limit=3")`; a run folder's history and
a comparison's provenance record it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ssd_eval.config.run import RunConfig
from ssd_eval.errors import EXIT_OK
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.reports.baseline import Baseline
from ssd_eval.reports.ci_report import run_markdown, write_ci_files
from ssd_eval.reports.comparison import CompareResult
from ssd_eval.reports.diagnosis import Diagnosis, diagnose_run
from ssd_eval.reports.gate import GateReport, Verdict, check_run
from ssd_eval.reports.results import RunResult, gate_facts, record_verdict, utc_now


@dataclass(frozen=True)
class Invocation:
    """Who asked for a verdict: the command its provenance records, when it started (UTC), and whether
    an error names an option by its command-line flag (`--run-name`, the CLI) or its keyword (`run_name`)."""

    command: tuple[str, ...]
    started: str
    flags: bool = False

    @classmethod
    def of_call(cls, call: str, *args: object, **options: object) -> Invocation:
        """A library call starting now, recorded as `("python", call, arg, ..., "key=value", ...)`: its
        positional arguments, then the options given (those left at None or False are left out)."""
        shown = [_shown(arg) for arg in args]
        given = {key: value for key, value in options.items() if value is not None and value is not False}
        shown += [f"{key}={_shown(value)}" for key, value in given.items()]
        return cls(("python", call, *shown), utc_now())


def _shown(value: object) -> str:
    """An argument as the provenance shows it: a path as written, a list comma-separated, a mapping
    (a config given as a dict) as `<mapping>`."""
    if isinstance(value, Mapping):
        return "<mapping>"
    if isinstance(value, str | os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple):
        return ",".join(_shown(item) for item in value)
    return str(value)


@dataclass(frozen=True)
class Evaluation:
    """A scored run with its verdict written into its folder (what `ssd_eval.evaluate`, `score` and
    `merge` return); truthy when the verdict is PASS."""

    result: RunResult  # as metrics.json records it, gate and provenance included
    gate: GateReport
    diagnosis: Diagnosis | None = None  # the likely protocol mistake of a full run that missed its figure

    def __bool__(self) -> bool:
        return self.verdict == "PASS"

    @property
    def folder(self) -> Path:
        return Path(self.result.run_dir)

    @property
    def stats(self) -> dict[str, float]:
        """The 12 COCO stats by name (AP, AP50, ... ARl); -1 where COCOeval could not compute one."""
        return dict(self.result.stats)

    @property
    def per_category(self) -> tuple[CategoryScore, ...]:
        return self.result.per_category

    @property
    def verdict(self) -> Verdict:
        return self.gate.verdict

    @property
    def exit_code(self) -> int:
        """What `ssd-eval` exits with for this verdict: 0, or 1 for FAIL (and NO VERDICT when required)."""
        return self.gate.exit_code


@dataclass(frozen=True)
class Comparison:
    """A comparison with its verdict written into its folder (what `ssd_eval.compare` returns); truthy when
    the verdict is PASS. A comparison config whose reference or other runs are not all finished yet has
    no result and no gate (NO VERDICT, exit code 0): `waiting` names the runs still to finish."""

    folder: Path
    result: CompareResult | None
    gate: GateReport | None
    finished: tuple[str, ...] = ()  # the runs whose folders are finished (a comparison config's)
    waiting: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.verdict == "PASS"

    @property
    def verdict(self) -> Verdict:
        return self.gate.verdict if self.gate is not None else "NO VERDICT"

    @property
    def exit_code(self) -> int:
        return self.gate.exit_code if self.gate is not None else EXIT_OK


def gate_run(result: RunResult, config: RunConfig, baseline: Baseline | None, *, verb: str) -> Evaluation:
    """Apply the config's rules to a scored run and write its verdict into its folder.

    metrics.json records the verdict beside the folder's history (the commands that worked on it, the
    run's own first: the engine appends each as it starts); junit.xml's suite is `ssd-eval <verb> <run>`.
    """
    report = check_run(gate_facts(result), expected=config.expected, gate=config.gate, baseline=baseline)
    # A full run that failed, or whose figures are not comparable (another protocol): name the
    # likely protocol mistake (None when nothing fits, or for a partial run or another model).
    diagnosis = diagnose_run(result, baseline) if report.verdict != "PASS" else None
    result = replace(result, diagnosis=diagnosis.to_json() if diagnosis is not None else None)
    result = record_verdict(result, report)
    folder = Path(result.run_dir)
    write_ci_files(
        folder,
        report,
        run_markdown(result, report),
        suite=f"ssd-eval {verb} {folder.name}",
        stats=result.stats,
    )
    return Evaluation(result, report, diagnosis)
