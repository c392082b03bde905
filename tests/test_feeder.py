"""The ordered parallel feeder: order, bounded look-ahead, errors at their turn, no stray threads."""

from __future__ import annotations

import threading
import time

import pytest

from ssd_eval.pipeline.feeder import default_workers, ordered_map


def _feed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ssd_eval-feed")]


def test_results_in_input_order_whatever_the_finishing_order():
    def slow_first(i: int) -> int:
        time.sleep(0.02 if i % 3 == 0 else 0.0)
        return i * i

    assert list(ordered_map(slow_first, range(20), workers=3)) == [i * i for i in range(20)]
    assert list(ordered_map(slow_first, range(20), workers=0)) == [i * i for i in range(20)]
    assert not _feed_threads()


def test_look_ahead_is_bounded():
    started: list[int] = []
    feed = ordered_map(lambda i: started.append(i) or i, range(100), workers=2, depth=4)
    assert next(feed) == 0
    time.sleep(0.05)
    assert len(started) <= 5  # the 4 in flight, plus the one submitted when item 0 was taken
    feed.close()
    assert not _feed_threads()


def test_an_error_arrives_at_its_turn_after_every_earlier_result():
    def fails_at_5(i: int) -> int:
        if i == 5:
            raise ValueError("bad item 5")
        return i

    got = []
    with pytest.raises(ValueError, match="bad item 5"):
        for value in ordered_map(fails_at_5, range(20), workers=3):
            got.append(value)
    assert got == [0, 1, 2, 3, 4]
    assert not _feed_threads()


def test_the_caller_stopping_early_leaves_no_threads_behind():
    def work(i: int) -> int:
        time.sleep(0.01)
        return i

    feed = ordered_map(work, range(1000), workers=2)
    for value in feed:
        if value == 3:
            break
    feed.close()
    assert not _feed_threads()


def test_keyboard_interrupt_in_the_consumer_shuts_the_workers_down():
    feed = ordered_map(lambda i: i, range(1000), workers=2)
    with pytest.raises(KeyboardInterrupt):
        try:
            for value in feed:
                if value == 2:
                    raise KeyboardInterrupt
        finally:
            feed.close()
    assert not _feed_threads()


def test_default_workers_is_sensible():
    assert 1 <= default_workers() <= 4
