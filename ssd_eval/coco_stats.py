"""The twelve COCO summary statistics, named once, in COCOeval.summarize() order, and which are undefined."""

from __future__ import annotations

STAT_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)


def is_undefined(value: float | None) -> bool:
    """Whether a stat is undefined rather than a figure (reports show `n/a`, gate rules do not hold it).

    COCOeval reports -1 for a stat without ground truth in its area range (or without any image);
    a per-category AP without ground truth is None.
    """
    return value is None or value < 0


def delta_text(value: float) -> str:
    """A difference of two stats as every report writes it: signed, 4 decimals; exactly zero (either
    sign) as 0.0000, never -0.0000; one too small for 4 decimals in scientific notation."""
    if value == 0:
        return "0.0000"
    if abs(value) < 5e-5:
        return f"{value:+.1e}"
    return f"{value:+.4f}"
