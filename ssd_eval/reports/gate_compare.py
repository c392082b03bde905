"""The gate of a comparison: the run config's rules on every run, and rules against the reference run.

A run that did not run (its provider is not available here, `skip_unavailable`) is part of the
verdict: one rule per such run says it was not evaluated and why; with `gate.required` it fails.
When no run besides the reference ran, nothing was compared: that is an error (exit 2) unless
`skip_unavailable` is set and `gate.required` is not.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ssd_eval.config.compare import AGREEMENT_RULES, CompareConfig, CompareGateConfig
from ssd_eval.reports.baseline import Baseline
from ssd_eval.reports.comparison import CompareResult, RunReport
from ssd_eval.reports.gate import (
    EPS,
    FAILED,
    PASSED,
    GateCheck,
    GateReport,
    RunFacts,
    check_config_rules,
    drop_checks,
    skipped_check,
)


def comparison_facts(result: CompareResult, report: RunReport) -> RunFacts:
    """What the gate rules read of one run of a comparison: every run evaluated the reference's
    images of the reference's ground truth (compare checked it), each with its own model."""
    protocol = result.protocol
    identity = result.identity
    if identity is not None and report.model is not None:
        identity = replace(
            identity, model_sha256=report.model.sha256.lower(), model_name=Path(report.model.path).name
        )
    return RunFacts(
        stats=report.stats,
        per_category=report.per_category,
        selection=protocol.selection,
        num_images=protocol.num_images,
        complete=protocol.complete,
        model_sha256=report.model.sha256 if report.model else "",
        model_name=Path(report.model.path).name if report.model else "",
        partial=f"shard {protocol.shard}" if protocol.shard else "",
        subset=identity.images.subset
        if identity is not None
        else (f"limit {protocol.limit}" if protocol.limit else ""),
        identity=identity,
    )


def _fraction(count: int, total: int) -> str:
    return f"{count} of {total} ({count / total:.4f})" if total else "0 of 0"


def agreement_checks(report: RunReport, gate: CompareGateConfig, *, against: str) -> list[GateCheck]:
    """The detection-level agreement rules that are set, on one run against the reference.

    Fractions count the detections scoring at least agreement.min_score on their own side (matching
    itself used every detection); the score and box differences are over every matched pair.
    """
    a = report.agreement
    who = report.name
    rules: list[tuple[str, bool, str]] = []  # (rule, passed, message)
    if a is None:
        set_rules = [name for name in AGREEMENT_RULES if getattr(gate, name) is not None]
        return [
            skipped_check(name, f"no detection agreement with {against} was measured", subject=who)
            for name in set_rules
        ]
    seen = f"scoring >= {a.min_score:g}"
    if gate.min_matched is not None:
        share = _fraction(a.visible_matched, a.visible_reference)
        passed = a.matched_fraction >= gate.min_matched - EPS
        rules.append(
            (
                f"matched >= {gate.min_matched:.4f} of {against}'s detections",
                passed,
                f"{who}: matched {share} of {against}'s detections {seen}"
                + ("" if passed else f", below the minimum {gate.min_matched:.4f}")
                + f" ({a.missing} missing of {a.reference_detections} in all)",
            )
        )
    if gate.max_extra is not None:
        share = _fraction(a.visible_extra, a.visible_run)
        passed = a.extra_fraction <= gate.max_extra + EPS
        rules.append(
            (
                f"extra <= {gate.max_extra:.4f} of the run's detections",
                passed,
                f"{who}: {share} of its detections {seen} have no partner in {against}"
                + ("" if passed else f", more than the allowed {gate.max_extra:.4f}"),
            )
        )
    if gate.max_score_diff is not None:
        passed = a.score_diff_max <= gate.max_score_diff + EPS
        rules.append(
            (
                f"score difference <= {gate.max_score_diff:g}",
                passed,
                f"{who}: matched pairs' scores differ by at most {a.score_diff_max:.3g} (p99 "
                f"{a.score_diff_p99:.3g}, {a.matched} pairs) from {against}"
                + ("" if passed else f", more than the allowed {gate.max_score_diff:g}"),
            )
        )
    if gate.max_box_diff is not None:
        passed = a.box_diff_px_max <= gate.max_box_diff + EPS
        rules.append(
            (
                f"box difference <= {gate.max_box_diff:g} px",
                passed,
                f"{who}: matched pairs' box corners differ by at most {a.box_diff_px_max:.3g} px (p99 "
                f"{a.box_diff_px_p99:.3g} px) from {against}"
                + ("" if passed else f", more than the allowed {gate.max_box_diff:g} px"),
            )
        )
    if gate.min_full_agreement is not None:
        share = _fraction(a.visible_images_full, a.images)
        passed = a.full_fraction >= gate.min_full_agreement - EPS
        rules.append(
            (
                f"images in full agreement >= {gate.min_full_agreement:.4f}",
                passed,
                f"{who}: {share} images agree with {against} detection for detection ({seen})"
                + ("" if passed else f", below the minimum {gate.min_full_agreement:.4f}"),
            )
        )
    return [GateCheck(rule, PASSED if ok else FAILED, message, who) for rule, ok, message in rules]


def _not_run(report: RunReport, *, required: bool) -> GateCheck:
    rule = f"{report.name} evaluated"
    why = f"not evaluated: {report.skip_reason or 'skipped'}"
    if required:
        return GateCheck(rule, FAILED, f"{report.name}: {why} (gate.required)", report.name)
    return skipped_check(rule, why, subject=report.name)


def _nothing_compared(result: CompareResult, config: CompareConfig) -> str:
    """Why the comparison has no verdict at all (exit 2), or ''."""
    others = result.runs[1:]
    if any(r.ran for r in others):
        return ""
    if config.skip_unavailable and not config.gate.required:
        return ""
    reasons = "; ".join(f"{r.name}: {r.skip_reason or 'skipped'}" for r in others) or "no runs listed"
    return (
        f"nothing was compared: no run besides the reference {result.reference} ran ({reasons}); "
        "install what the runs need (see docs/compare.md)"
        + (", or drop gate.required" if config.gate.required else "")
    )


def gate_comparison(result: CompareResult, config: CompareConfig, baseline: Baseline | None) -> GateReport:
    """Every gate rule on every run: config rules on each, reference rules on the others."""
    gate = config.gate
    checks: list[GateCheck] = []
    reference = result.runs[0]
    for report in result.runs:
        if not report.ran:
            checks.append(_not_run(report, required=gate.required))
            continue
        facts = comparison_facts(result, report)
        checks.extend(check_config_rules(facts, gate, baseline, subject=report.name))
        if report is reference or not reference.ran:
            continue
        checks += drop_checks(
            facts,
            reference.stats,
            reference.per_category,
            gate,
            max_drop=gate.max_ap_drop,
            max_class_drop=gate.max_class_ap_drop,
            against=f"reference {reference.name}",
            subject=report.name,
        )
        checks += agreement_checks(report, gate, against=f"reference {reference.name}")
    # A comparison with --limit is not partial for its own rules: every run saw the same images.
    return GateReport(tuple(checks), required=gate.required, error=_nothing_compared(result, config))
