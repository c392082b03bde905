"""The accuracy gate: does a run's result match what was expected of it?

Rules (each a pure function returning one `GateCheck`): `expected` (|metric - value| <= tolerance),
`min_ap` (a floor), `max_baseline_drop` / `max_class_baseline_drop` (against a stored baseline file),
and in a comparison `max_ap_drop` / `max_class_ap_drop` (against the reference run). A rule that
cannot apply (a partial run against full-selection figures) is recorded as skipped, with why.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from ssd_eval.config.run import ExpectedConfig, GateConfig
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.reports.baseline import Baseline


@dataclass(frozen=True)
class GateCheck:
    """One rule's verdict with a one-line explanation."""

    rule: str
    passed: bool
    message: str
    skipped: bool = False  # the rule did not apply (passed is then True)
    subject: str = ""  # the run the rule was applied to, in a comparison


@dataclass(frozen=True)
class GateReport:
    """All rules' verdicts; truthy when every rule passed (and when there were none)."""

    checks: tuple[GateCheck, ...] = ()

    def __bool__(self) -> bool:
        return all(check.passed for check in self.checks)

    def __iter__(self) -> Iterator[GateCheck]:
        return iter(self.checks)

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        return tuple(check for check in self.checks if not check.passed)

    @property
    def skipped(self) -> tuple[GateCheck, ...]:
        return tuple(check for check in self.checks if check.skipped)


def _small(value: float, *, sign: bool = False) -> str:
    """4 decimals, or scientific notation for a tolerance or delta too small to show in 4 decimals."""
    if value != 0 and abs(value) < 5e-5:
        return f"{value:+.1e}" if sign else f"{value:.1e}"
    return f"{value:+.4f}" if sign else f"{value:.4f}"


def expected_rule(expected: ExpectedConfig) -> str:
    """How the `expected` rule names itself in reports."""
    return f"{expected.metric} = {expected.value:.4f} ± {_small(expected.tolerance)}"


def check_expected(stats: Mapping[str, float], expected: ExpectedConfig) -> GateCheck:
    """Pass when |stats[metric] - value| <= tolerance.

    Two-sided on purpose: a result far *above* the reference also means the protocol changed
    (boxes clipped, images dropped, a different model file).
    """
    if expected.metric not in stats:
        known = ", ".join(stats)
        return GateCheck("expected", False, f"metric {expected.metric!r} is not a COCO stat (one of {known})")
    measured = stats[expected.metric]
    delta = measured - expected.value
    rule = expected_rule(expected)
    if abs(delta) <= expected.tolerance + 1e-12:
        return GateCheck(
            rule,
            True,
            f"{expected.metric} {measured:.4f} is within {_small(expected.tolerance)} of "
            f"the reference {expected.value:.4f} (delta {_small(delta, sign=True)})",
        )
    return GateCheck(
        rule,
        False,
        f"{expected.metric} {measured:.4f} misses the reference {expected.value:.4f} "
        f"by {_small(delta, sign=True)} (tolerance {_small(expected.tolerance)})",
    )


def skipped_check(rule: str, reason: str, *, subject: str = "") -> GateCheck:
    """A rule that did not apply, and why."""
    return GateCheck(rule, True, reason, skipped=True, subject=subject)


def _unknown_metric(rule: str, metric: str, stats: Mapping[str, float], subject: str) -> GateCheck:
    known = ", ".join(stats)
    return GateCheck(rule, False, f"metric {metric!r} is not a COCO stat (one of {known})", subject=subject)


def _who(subject: str) -> str:
    return f"{subject}: " if subject else ""


def check_min(stats: Mapping[str, float], *, metric: str, floor: float, subject: str = "") -> GateCheck:
    """Pass when stats[metric] >= floor."""
    rule = f"{metric} >= {floor:.4f}"
    if metric not in stats:
        return _unknown_metric(rule, metric, stats, subject)
    measured = stats[metric]
    if measured >= floor - 1e-12:
        return GateCheck(
            rule, True, f"{_who(subject)}{metric} {measured:.4f} >= {floor:.4f}", subject=subject
        )
    return GateCheck(
        rule,
        False,
        f"{_who(subject)}{metric} {measured:.4f} is below the minimum {floor:.4f} by {floor - measured:.4f}",
        subject=subject,
    )


def check_drop(
    stats: Mapping[str, float],
    reference: Mapping[str, float],
    *,
    metric: str,
    max_drop: float,
    against: str,
    subject: str = "",
) -> GateCheck:
    """Pass when reference[metric] - stats[metric] <= max_drop (a gain always passes)."""
    rule = f"{metric} drop vs {against} <= {max_drop:.4f}"
    if metric not in stats:
        return _unknown_metric(rule, metric, stats, subject)
    if metric not in reference:
        have = ", ".join(reference) or "none"
        return GateCheck(rule, False, f"{against} has no {metric} (it has: {have})", subject=subject)
    measured, ref = stats[metric], reference[metric]
    drop = ref - measured
    text = f"{_who(subject)}{metric} {measured:.4f} vs {against} {ref:.4f} (delta {measured - ref:+.4f}"
    if drop <= max_drop + 1e-12:
        return GateCheck(rule, True, f"{text}, allowed drop {max_drop:.4f})", subject=subject)
    return GateCheck(rule, False, f"{text}): drops more than the allowed {max_drop:.4f}", subject=subject)


def check_class_drops(
    per_category: Sequence[CategoryScore],
    reference: Sequence[CategoryScore],
    *,
    max_drop: float,
    against: str,
    min_gt: int = 1,
    subject: str = "",
    shown: int = 5,
) -> GateCheck:
    """Pass when no category's AP is lower than the reference's by more than max_drop.

    Only categories with an AP on both sides and at least `min_gt` ground-truth boxes count.
    """
    rule = f"per-class AP drop vs {against} <= {max_drop:.4f}"
    ref_ap = {c.category_id: c.ap for c in reference}
    drops = []
    for c in per_category:
        ref = ref_ap.get(c.category_id)
        if c.ap is None or ref is None or c.num_gt < min_gt:
            continue
        drops.append((ref - c.ap, c.name, c.ap, ref))
    if not drops:
        return GateCheck(
            rule, False, f"{_who(subject)}no category has an AP on both sides to compare", subject=subject
        )
    drops.sort(reverse=True)
    failed = [d for d in drops if d[0] > max_drop + 1e-12]
    worst = drops[0]
    if not failed:
        return GateCheck(
            rule,
            True,
            f"{_who(subject)}{len(drops)} categories within {max_drop:.4f} of {against} "
            f"(largest drop {worst[1]} {worst[0]:+.4f})",
            subject=subject,
        )
    listed = ", ".join(
        f"{name} {ap:.4f} vs {ref:.4f} ({-drop:+.4f})" for drop, name, ap, ref in failed[:shown]
    )
    more = f" and {len(failed) - shown} more" if len(failed) > shown else ""
    return GateCheck(
        rule,
        False,
        f"{_who(subject)}{len(failed)} of {len(drops)} categories drop more than {max_drop:.4f} vs "
        f"{against}: {listed}{more}",
        subject=subject,
    )


def baseline_mismatch(baseline: Baseline, *, selection: str, num_images: int) -> str | None:
    """Why a run cannot be compared with a baseline (another protocol), or None."""
    want_selection = baseline.protocol.get("selection")
    want_images = baseline.protocol.get("num_images")
    if want_selection is not None and want_selection != selection:
        return f"baseline {baseline.name} is for selection {want_selection!r}, this run used {selection!r}"
    if want_images is not None and int(want_images) != num_images:
        return f"baseline {baseline.name} is for {want_images} images, this run scored {num_images}"
    return None


@dataclass(frozen=True)
class RunFacts:
    """What the gate needs to know of one run besides its stats."""

    stats: Mapping[str, float]
    per_category: Sequence[CategoryScore]
    selection: str
    num_images: int
    complete: bool  # False for a partial run (limit/shard)
    model_sha256: str = ""


def check_config_rules(
    run: RunFacts, gate: GateConfig, baseline: Baseline | None, *, subject: str = ""
) -> list[GateCheck]:
    """The rules of a `gate` section that compare a run with absolute or stored figures.

    On a partial run these figures (for the whole image selection) do not apply: skipped, with why.
    """
    checks: list[GateCheck] = []
    partial = "this run is partial (limit/shard) and the figure is for the whole image selection"
    if gate.min_ap is not None:
        rule = f"{gate.metric} >= {gate.min_ap:.4f}"
        checks.append(
            check_min(run.stats, metric=gate.metric, floor=gate.min_ap, subject=subject)
            if run.complete
            else skipped_check(rule, partial, subject=subject)
        )
    if baseline is None:
        return checks
    against = f"baseline {baseline.name}"
    rules: list[tuple[str, float]] = []
    if gate.max_baseline_drop is not None:
        rules.append(
            (f"{gate.metric} drop vs {against} <= {gate.max_baseline_drop:.4f}", gate.max_baseline_drop)
        )
    if gate.max_class_baseline_drop is not None:
        rules.append((f"per-class AP drop vs {against} <= {gate.max_class_baseline_drop:.4f}", -1.0))
    mismatch = baseline_mismatch(baseline, selection=run.selection, num_images=run.num_images)
    for rule, _ in rules:
        if not run.complete:
            checks.append(skipped_check(rule, partial, subject=subject))
        elif mismatch is not None:
            checks.append(
                GateCheck(rule, False, f"{_who(subject)}{mismatch}: not comparable", subject=subject)
            )
    if not run.complete or mismatch is not None:
        return checks
    note = ""
    if baseline.model.get("sha256") and run.model_sha256 and baseline.model["sha256"] != run.model_sha256:
        note = f" [another model than the baseline's {baseline.model.get('name', '')!s}]"
    if gate.max_baseline_drop is not None:
        check = check_drop(
            run.stats,
            baseline.stats,
            metric=gate.metric,
            max_drop=gate.max_baseline_drop,
            against=against,
            subject=subject,
        )
        checks.append(GateCheck(check.rule, check.passed, check.message + note, subject=subject))
    if gate.max_class_baseline_drop is not None:
        checks.append(
            check_class_drops(
                run.per_category,
                baseline.per_category,
                max_drop=gate.max_class_baseline_drop,
                against=against,
                min_gt=gate.class_min_gt,
                subject=subject,
            )
        )
    return checks


def check_run(
    run: RunFacts,
    *,
    expected: ExpectedConfig | None,
    gate: GateConfig,
    baseline: Baseline | None,
    force_expected: bool = False,
) -> GateReport:
    """Every rule of a run config: `expected`, then the `gate` section.

    On a partial run `expected` (a figure for the whole image selection) is skipped unless the user
    asked for it explicitly (`force_expected`, as `--expect-ap` does).
    """
    checks: list[GateCheck] = []
    if expected is not None:
        if run.complete or force_expected:
            checks.append(check_expected(run.stats, expected))
        else:
            checks.append(
                skipped_check(
                    expected_rule(expected),
                    f"the reference {expected.metric} {expected.value} is for the whole image selection and "
                    "this run is partial (limit/shard); pass --expect-ap to gate anyway",
                )
            )
    checks.extend(check_config_rules(run, gate, baseline))
    return GateReport(tuple(checks))
