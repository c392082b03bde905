"""The accuracy gate: does a run's result match what was expected of it?"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ssd_eval.config import ExpectedConfig


@dataclass(frozen=True)
class GateCheck:
    """One rule's verdict with a one-line explanation."""

    rule: str
    passed: bool
    message: str


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
    rule = f"{expected.metric} = {expected.value:.4f} ± {expected.tolerance:.4f}"
    if abs(delta) <= expected.tolerance + 1e-12:
        return GateCheck(
            rule,
            True,
            f"{expected.metric} {measured:.4f} is within {expected.tolerance:.4f} of "
            f"the reference {expected.value:.4f} (delta {delta:+.4f})",
        )
    return GateCheck(
        rule,
        False,
        f"{expected.metric} {measured:.4f} misses the reference {expected.value:.4f} "
        f"by {delta:+.4f} (tolerance {expected.tolerance:.4f})",
    )
