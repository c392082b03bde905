"""The twelve stat names, which values are undefined, and how every report writes a difference."""

from __future__ import annotations

import pytest

from ssd_eval.coco_stats import STAT_NAMES, delta_text, is_undefined


def test_the_twelve_stats_in_cocoeval_summarize_order():
    names = "AP AP50 AP75 APs APm APl AR1 AR10 AR100 ARs ARm ARl"
    assert names.split() == list(STAT_NAMES)


@pytest.mark.parametrize(("value", "undefined"), [(None, True), (-1.0, True), (0.0, False), (0.25, False)])
def test_undefined_is_none_or_cocoevals_minus_one(value, undefined):
    assert is_undefined(value) is undefined


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0.0000"),  # exactly zero: no sign
        (-0.0, "0.0000"),  # never -0.0000
        (1.0, "+1.0000"),
        (-0.123456, "-0.1235"),  # signed, 4 decimals
        (5e-5, "+0.0001"),  # the smallest that 4 decimals show (rounded up)
        (-5e-5, "-0.0001"),
        (4.9e-5, "+4.9e-05"),  # too small for 4 decimals: scientific, never a signed zero
        (-3e-6, "-3.0e-06"),
        (1e-7, "+1.0e-07"),
    ],
)
def test_delta_text(value, text):
    assert delta_text(value) == text
