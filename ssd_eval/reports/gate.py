"""The accuracy gate: does a run's result match what was expected of it?

Every path (run, resume, score, merge, compare) evaluates its rules here and nowhere else. Each rule
is a pure function returning one `GateCheck` in one of four states:

- passed / failed: the rule was evaluated;
- skipped: it could not be evaluated (e.g. a comparison run whose provider is not available here);
- not comparable: the figure it holds the run against is for something else: another image protocol,
  another model file (sha256), or the whole image selection while this run is partial (`--limit`,
  `--shard`; a shard's full-run rules are *deferred* to `ssd-eval merge`, which applies them).

The verdict is PASS only when at least one rule was evaluated and none failed, FAIL when one failed,
and NO VERDICT otherwise (exit 0, or 1 with `gate.required` / `--require-gate`, except on a partial
run, whose rules are deferred: a shard must exit 0 so that the merge after it starts).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ssd_eval.assets.sources import MODELS
from ssd_eval.coco_stats import delta_text, is_undefined
from ssd_eval.config.run import ExpectedConfig, GateConfig
from ssd_eval.errors import EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE
from ssd_eval.evaluation.identity import FIGURE_ASPECTS, NOT_KNOWN, RunIdentity, describe_differences
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.reports.baseline import Baseline, published_slack

State = Literal["passed", "failed", "skipped", "not comparable"]
Verdict = Literal["PASS", "FAIL", "NO VERDICT"]
PASSED: State = "passed"
FAILED: State = "failed"
SKIPPED: State = "skipped"
NOT_COMPARABLE: State = "not comparable"

EPS = 1e-12  # float noise allowed at every threshold


@dataclass(frozen=True)
class GateCheck:
    """One rule's state with a one-line explanation (why, for skipped and not comparable)."""

    rule: str
    state: State
    message: str
    subject: str = ""  # the run the rule was applied to, in a comparison

    @property
    def passed(self) -> bool:
        return self.state == PASSED

    @property
    def failed(self) -> bool:
        return self.state == FAILED

    @property
    def evaluated(self) -> bool:
        return self.state in (PASSED, FAILED)

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "state": self.state, "message": self.message, "subject": self.subject}


@dataclass(frozen=True)
class GateReport:
    """All rules' states and the verdict they add up to; truthy when the verdict is PASS."""

    checks: tuple[GateCheck, ...] = ()
    required: bool = False  # gate.required / --require-gate: NO VERDICT exits 1
    partial: str = ""  # why the run is partial ("shard 1/4", "limit 20"); its rules are deferred
    error: str = ""  # the gate could not be applied at all (exit 2), e.g. nothing was compared

    def __bool__(self) -> bool:
        return self.verdict == "PASS"

    def __iter__(self) -> Iterator[GateCheck]:
        return iter(self.checks)

    def with_state(self, state: State) -> tuple[GateCheck, ...]:
        return tuple(check for check in self.checks if check.state == state)

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        return self.with_state(FAILED)

    @property
    def verdict(self) -> Verdict:
        if self.failures:
            return "FAIL"
        if self.error or not self.with_state(PASSED):
            return "NO VERDICT"
        return "PASS"

    @property
    def exit_code(self) -> int:
        if self.error:
            return EXIT_USAGE
        if self.verdict == "FAIL":
            return EXIT_GATE_FAILED
        if self.verdict == "NO VERDICT" and self.required and not self.partial:
            return EXIT_GATE_FAILED
        return EXIT_OK

    @property
    def reason(self) -> str:
        """The verdict explained in one line."""
        total = len(self.checks)
        if self.error:
            return self.error
        if self.verdict == "FAIL":
            return f"{len(self.failures)} of {total} rule(s) failed"
        if self.verdict == "PASS":
            return f"{len(self.with_state(PASSED))} of {total} rule(s) passed" + self._others(PASSED)
        if self.partial:
            why = (
                f"partial run ({self.partial}): the full-run rules are deferred to a full run "
                "(`ssd-eval merge` of all shards applies them)"
            )
        elif not total:
            why = "no rules are set"
        else:
            why = "no rule was evaluated" + self._others(None)
        if self.required and not self.partial:
            why += "; gate.required (--require-gate) makes this a failure"
        return why

    def _others(self, besides: State | None) -> str:
        counts = [
            f"{len(self.with_state(s))} {s}"
            for s in (SKIPPED, NOT_COMPARABLE)
            if s != besides and self.with_state(s)
        ]
        return f" ({', '.join(counts)})" if counts else ""

    @property
    def verdict_line(self) -> str:
        return f"{self.verdict}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        """The gate as recorded in metrics.json."""
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "required": self.required,
            "partial": self.partial or None,
            "rules": [check.to_json() for check in self.checks],
        }


def _small(value: float, *, sign: bool = False) -> str:
    """4 decimals, or scientific notation for a tolerance or delta too small to show in 4 decimals."""
    if sign:
        return delta_text(value)
    return f"{value:.1e}" if value != 0 and abs(value) < 5e-5 else f"{value:.4f}"


def _who(subject: str) -> str:
    return f"{subject}: " if subject else ""


def _unknown_metric(rule: str, metric: str, stats: Mapping[str, float], subject: str) -> GateCheck:
    known = ", ".join(stats)
    return GateCheck(rule, FAILED, f"metric {metric!r} is not a COCO stat (one of {known})", subject)


def _undefined(rule: str, metric: str, *, whose: str, subject: str) -> GateCheck:
    """A rule on a stat COCOeval reports as -1: neither passed nor failed."""
    return not_comparable(
        rule,
        f"{metric} is undefined for {whose} (pycocotools reports -1: no ground truth in its area range), "
        "so the rule cannot be evaluated",
        subject=subject,
    )


@dataclass(frozen=True)
class RunFacts:
    """What the gate needs to know of one run besides its stats."""

    stats: Mapping[str, float]
    per_category: Sequence[CategoryScore]
    selection: str
    num_images: int
    complete: bool  # False unless the whole selection was evaluated (no limit, id list or shard)
    model_sha256: str = ""
    model_name: str = ""
    partial: str = ""  # a shard ("shard 1/4"): a part of a whole, whose rules the merge applies
    subset: str = ""  # how a run narrowed the selection ("limit 200", "id list …"); gated like any run
    identity: RunIdentity | None = None  # what the run is: a measured baseline of the same holds it


def partial_reason(run: RunFacts) -> str:
    """Why a figure for the whole image selection does not apply to this run (the 'not comparable'
    message): a shard defers it to the merge; a subset can be gated against a baseline of itself."""
    if run.partial:
        return (
            f"partial run ({run.partial}): the figure is for the whole image selection; "
            "deferred to `ssd-eval merge` of all shards"
        )
    scope = run.subset or "a subset"
    return (
        f"the figure is for the whole image selection, this run evaluated {run.num_images} images "
        f"({scope}); gate a subset against a baseline made from a reference run of the same images "
        "(`ssd-eval baseline RUN_DIR`)"
    )


def _known_model(sha256: str) -> str:
    """The name of a known model file with this sha256, if any."""
    for source in MODELS.values():
        if source.sha256.lower() == sha256.lower():
            return source.filename
    return ""


def model_mismatch(run: RunFacts, sha256: str | None, name: str = "") -> str | None:
    """Why a figure for the model `sha256` does not apply to this run's model, or None.

    A model that is not known (detections imported without naming their model) is no model's: a
    figure tied to a model does not apply to it, nor does a figure made from such a run apply to any.
    """
    if not sha256 or not run.model_sha256:
        return None
    if run.model_sha256 == NOT_KNOWN:
        named = name or _known_model(sha256) or "a model"
        return (
            f"the figure is for {named} (sha256 {sha256[:12]}…) and this run's model is not known (imported "
            "detections): name it with `ssd-eval import --model FILE` or `--model-sha256 SHA256`"
        )
    if sha256 == NOT_KNOWN:
        return (
            f"the figure was measured on detections of a model that is not known ({name or 'imported'}): "
            "it holds no model's runs; remake it from an import that names its model (--model-sha256)"
        )
    if sha256.lower() == run.model_sha256.lower():
        return None
    name = name or _known_model(sha256) or "another model"
    this = f" ({run.model_name})" if run.model_name else ""
    return (
        f"the model is not {name}: the figure is for {name} (sha256 {sha256[:12]}…), this run's "
        f"model{this} has sha256 {run.model_sha256[:12]}…"
    )


def _figure(value: float) -> str:
    """A reference figure: 4 decimals, more when it was given with more (0.19578)."""
    text = f"{value:.4f}"
    return text if float(text) == value else f"{value:.6g}"


def expected_rule(expected: ExpectedConfig, *, slack: float = 0.0) -> str:
    """How the `expected` rule (or a baseline figure held both ways) names itself in reports."""
    allowed = _small(expected.tolerance) + (f" + {slack:.4g}" if slack else "")
    return f"{expected.metric} = {_figure(expected.value)} ± {allowed}"


def check_expected(
    stats: Mapping[str, float],
    expected: ExpectedConfig,
    *,
    slack: float = 0.0,
    subject: str = "",
    against: str = "the reference",
) -> GateCheck:
    """Pass when |stats[metric] - value| <= tolerance (+ `slack`: the figure's own rounding).

    Two-sided on purpose: a result far *above* the reference also means the protocol changed
    (boxes clipped, images dropped, a different model file). An undefined stat (-1) on either side is
    not comparable.
    """
    rule = expected_rule(expected, slack=slack)
    if expected.metric not in stats:
        return _unknown_metric(rule, expected.metric, stats, subject)
    measured = stats[expected.metric]
    if is_undefined(measured):
        return _undefined(rule, expected.metric, whose="this run", subject=subject)
    if is_undefined(expected.value):  # a baseline's figure may be -1
        return _undefined(rule, expected.metric, whose=against, subject=subject)
    delta = measured - expected.value
    allowed = expected.tolerance + slack
    if abs(delta) <= allowed + EPS:
        return GateCheck(
            rule,
            PASSED,
            f"{_who(subject)}{expected.metric} {measured:.4f} is within {_small(allowed)} of "
            f"{against} {_figure(expected.value)} (delta {_small(delta, sign=True)})",
            subject,
        )
    return GateCheck(
        rule,
        FAILED,
        f"{_who(subject)}{expected.metric} {measured:.4f} misses {against} {_figure(expected.value)} "
        f"by {_small(delta, sign=True)} (tolerance {_small(allowed)})",
        subject,
    )


def skipped_check(rule: str, reason: str, *, subject: str = "") -> GateCheck:
    """A rule that could not be evaluated, and why."""
    return GateCheck(rule, SKIPPED, f"{_who(subject)}{reason}", subject)


def not_comparable(rule: str, reason: str, *, subject: str = "") -> GateCheck:
    """A rule whose figure is for something else than this run, and why."""
    return GateCheck(rule, NOT_COMPARABLE, f"{_who(subject)}not comparable: {reason}", subject)


def check_min(stats: Mapping[str, float], *, metric: str, floor: float, subject: str = "") -> GateCheck:
    """Pass when stats[metric] >= floor; an undefined stat (-1) is not comparable."""
    rule = f"{metric} >= {floor:.4f}"
    if metric not in stats:
        return _unknown_metric(rule, metric, stats, subject)
    measured = stats[metric]
    if is_undefined(measured):
        return _undefined(rule, metric, whose="this run", subject=subject)
    if measured >= floor - EPS:
        return GateCheck(rule, PASSED, f"{_who(subject)}{metric} {measured:.4f} >= {floor:.4f}", subject)
    return GateCheck(
        rule,
        FAILED,
        f"{_who(subject)}{metric} {measured:.4f} is below the minimum {floor:.4f} by {floor - measured:.4f}",
        subject,
    )


def check_drop(
    stats: Mapping[str, float],
    reference: Mapping[str, float],
    *,
    metric: str,
    max_drop: float,
    against: str,
    subject: str = "",
    slack: float = 0.0,
) -> GateCheck:
    """Pass when reference[metric] - stats[metric] <= max_drop (+ `slack`; a gain always passes).

    `slack` is half a unit of the last digit a published figure was given with (0.0005 for .115).
    An undefined stat (-1) in the run or the reference is not comparable.
    """
    rule = f"{metric} drop vs {against} <= {max_drop:.4f}"
    if metric not in stats:
        return _unknown_metric(rule, metric, stats, subject)
    if metric not in reference:
        have = ", ".join(reference) or "none"
        return GateCheck(rule, FAILED, f"{against} has no {metric} (it has: {have})", subject)
    measured, ref = stats[metric], reference[metric]
    if is_undefined(measured):
        return _undefined(rule, metric, whose="this run", subject=subject)
    if is_undefined(ref):
        return _undefined(rule, metric, whose=against, subject=subject)
    drop = ref - measured
    allowed = f"{max_drop:.4f}" + (f" + {slack:.4g} (the figure's published precision)" if slack else "")
    delta = delta_text(measured - ref)
    text = f"{_who(subject)}{metric} {measured:.4f} vs {against} {ref:.4f} (delta {delta}"
    if drop <= max_drop + slack + EPS:
        return GateCheck(rule, PASSED, f"{text}, allowed drop {allowed})", subject)
    return GateCheck(rule, FAILED, f"{text}): drops more than the allowed {allowed}", subject)


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
            rule, FAILED, f"{_who(subject)}no category has an AP on both sides to compare", subject
        )
    drops.sort(reverse=True)
    failed = [d for d in drops if d[0] > max_drop + EPS]
    worst = drops[0]
    if not failed:
        return GateCheck(
            rule,
            PASSED,
            f"{_who(subject)}{len(drops)} categories within {max_drop:.4f} of {against} "
            f"(largest drop {worst[1]} {delta_text(worst[0])})",
            subject,
        )
    listed = ", ".join(
        f"{name} {ap:.4f} vs {ref:.4f} ({delta_text(-drop)})" for drop, name, ap, ref in failed[:shown]
    )
    more = f" and {len(failed) - shown} more" if len(failed) > shown else ""
    return GateCheck(
        rule,
        FAILED,
        f"{_who(subject)}{len(failed)} of {len(drops)} categories drop more than {max_drop:.4f} vs "
        f"{against}: {listed}{more}",
        subject,
    )


def baseline_mismatch(baseline: Baseline, run: RunFacts) -> str | None:
    """Why a run cannot be held against a baseline's figures (other images or ground truth), or None.

    A baseline that records the identity of the run it was made from holds any run of the same
    ground truth and images; an older or published one (no identity) holds runs of the whole
    selection with its image count.
    """
    if run.partial:
        return partial_reason(run)
    if baseline.identity is not None and run.identity is not None:
        differences = run.identity.differences(baseline.identity, FIGURE_ASPECTS)
        if differences:
            return describe_differences(differences, "this run", f"baseline {baseline.name}")
        return None
    if not run.complete:
        return partial_reason(run)
    want_selection = baseline.protocol.get("selection")
    want_images = baseline.protocol.get("num_images")
    if want_selection is not None and want_selection != run.selection:
        return (
            f"baseline {baseline.name} is for selection {want_selection!r}, this run used {run.selection!r}"
        )
    if want_images is not None and int(want_images) != run.num_images:
        return f"baseline {baseline.name} is for {want_images} images, this run scored {run.num_images}"
    return None


def baseline_holds_any_model(baseline: Baseline, gate: GateConfig) -> bool:
    """A measured baseline of a known run identity is there to hold other model files (an int8 or fp16
    conversion, a new export) to its figures; published figures hold only their model unless any_model."""
    return gate.any_model or (baseline.kind == "measured" and baseline.identity is not None)


def check_config_rules(
    run: RunFacts, gate: GateConfig, baseline: Baseline | None, *, subject: str = ""
) -> list[GateCheck]:
    """The rules of a `gate` section that hold a run against absolute or stored figures.

    `min_ap` is for the whole image selection; a baseline's figures hold runs of its own identity
    (ground truth and images). On a shard every one is deferred to the merge.
    """
    checks: list[GateCheck] = []
    if gate.min_ap is not None:
        rule = f"{gate.metric} >= {gate.min_ap:.4f}"
        checks.append(
            check_min(run.stats, metric=gate.metric, floor=gate.min_ap, subject=subject)
            if run.complete
            else not_comparable(rule, partial_reason(run), subject=subject)
        )
    if baseline is None:
        return checks
    against = f"baseline {baseline.name}"
    rules: list[str] = []
    if gate.max_baseline_drop is not None:
        rules.append(f"{gate.metric} drop vs {against} <= {gate.max_baseline_drop:.4f}")
    if gate.max_class_baseline_drop is not None:
        rules.append(f"per-class AP drop vs {against} <= {gate.max_class_baseline_drop:.4f}")
    figures = [_baseline_figure(baseline, stat, gate.baseline_tolerance) for stat in gate.baseline_stats]
    rules.extend(expected_rule(figure, slack=published_slack(baseline, figure.metric)) for figure in figures)
    why: str | None = None
    if not baseline_holds_any_model(baseline, gate):  # another model first: the figures are not about it
        why = model_mismatch(run, baseline.model.get("sha256"), str(baseline.model.get("name", "")))
    if why is None:
        why = baseline_mismatch(baseline, run)
    if why is not None:
        return checks + [not_comparable(rule, why, subject=subject) for rule in rules]
    checks += drop_checks(
        run,
        baseline.stats,
        baseline.per_category,
        gate,
        max_drop=gate.max_baseline_drop,
        max_class_drop=gate.max_class_baseline_drop,
        against=against,
        subject=subject,
        slack=published_slack(baseline, gate.metric),
    )
    for figure in figures:
        slack = published_slack(baseline, figure.metric)
        checks.append(check_expected(run.stats, figure, slack=slack, subject=subject, against=against))
    return checks


def drop_checks(
    run: RunFacts,
    reference_stats: Mapping[str, float],
    reference_per_category: Sequence[CategoryScore],
    gate: GateConfig,
    *,
    max_drop: float | None,
    max_class_drop: float | None,
    against: str,
    subject: str,
    slack: float = 0.0,
) -> list[GateCheck]:
    """The drop rules against a reference (a baseline, or a comparison's reference run) that are set."""
    checks: list[GateCheck] = []
    if max_drop is not None:
        checks.append(
            check_drop(
                run.stats,
                reference_stats,
                metric=gate.metric,
                max_drop=max_drop,
                against=against,
                subject=subject,
                slack=slack,
            )
        )
    if max_class_drop is not None:
        checks.append(
            check_class_drops(
                run.per_category,
                reference_per_category,
                max_drop=max_class_drop,
                against=against,
                min_gt=gate.class_min_gt,
                subject=subject,
            )
        )
    return checks


def _baseline_figure(baseline: Baseline, stat: str, tolerance: float) -> ExpectedConfig:
    """A baseline's figure for one stat as an expected value (its presence is checked at config time)."""
    return ExpectedConfig(value=baseline.stats[stat], tolerance=tolerance, metric=stat)


def check_expected_rule(run: RunFacts, expected: ExpectedConfig, gate: GateConfig) -> GateCheck:
    """The `expected` rule, or why it does not apply to this run."""
    rule = expected_rule(expected)
    mismatch = None if gate.any_model else model_mismatch(run, expected.model_sha256)
    if mismatch is not None:
        return not_comparable(rule, mismatch)
    if not run.complete:
        return not_comparable(rule, partial_reason(run))
    if expected.selection is not None and expected.selection != run.selection:
        return not_comparable(
            rule, f"the figure is for selection {expected.selection!r}, this run used {run.selection!r}"
        )
    return check_expected(run.stats, expected)


def check_run(
    run: RunFacts, *, expected: ExpectedConfig | None, gate: GateConfig, baseline: Baseline | None
) -> GateReport:
    """Every rule of a run config (`expected`, then the `gate` section) on one run's result."""
    checks: list[GateCheck] = []
    if expected is not None:
        checks.append(check_expected_rule(run, expected, gate))
    checks.extend(check_config_rules(run, gate, baseline))
    return GateReport(tuple(checks), required=gate.required, partial=run.partial)
