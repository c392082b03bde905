"""The ordered parallel feeder: order, bounded look-ahead, errors at their turn, no stray threads."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

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


@pytest.mark.parametrize(("cpus", "workers"), [(None, 1), (1, 1), (3, 3), (4, 4), (16, 4)])
def test_default_workers_one_per_cpu_at_most_4(monkeypatch, cpus, workers):
    """The docstring's rule: one per CPU, at most 4; one when Python cannot count the CPUs."""
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert default_workers() == workers


def test_negative_workers_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^workers must be >= 0, got -1$"):
        next(ordered_map(lambda i: i, range(3), workers=-1))


def _counted(n: int, pulled: list[int]) -> Iterator[int]:
    """range(n), noting each item when the feeder takes it (in the caller's thread)."""
    for i in range(n):
        pulled.append(i)
        yield i


@pytest.mark.parametrize(
    ("workers", "depth", "ahead"),
    [
        (1, 1, 1),  # depth 1: one item in flight
        (1, 0, 1),  # depth 0 is read as 1: never nothing in flight
        (2, 1, 1),
        (1, 3, 3),
        (3, None, 6),  # the default: 2 x workers (docs/performance.md "Workers")
        (1, None, 2),
    ],
)
def test_items_taken_before_the_first_result(workers, depth, ahead):
    """`ahead` items are submitted before the first result is waited for, then one more as it is taken."""
    pulled: list[int] = []
    feed = ordered_map(lambda i: i, _counted(100, pulled), workers=workers, depth=depth)
    assert next(feed) == 0
    assert pulled == list(range(ahead + 1))
    assert next(feed) == 1
    assert pulled == list(range(ahead + 2))
    feed.close()
    assert not _feed_threads()


def test_workers_threads_named_ssd_eval_feed():
    """`workers` threads and no more, named so that a stack dump (and the tests above) can find them."""
    names: set[str] = set()

    def work(i: int) -> int:
        names.add(threading.current_thread().name)
        time.sleep(0.02)
        return i

    assert list(ordered_map(work, range(8), workers=2)) == list(range(8))
    assert names == {"ssd_eval-feed_0", "ssd_eval-feed_1"}


def test_stopping_early_cancels_the_items_not_started():
    """One worker, 8 items ahead: after the first result only the item already running may still run."""
    ran: list[int] = []

    def work(i: int) -> int:
        ran.append(i)
        time.sleep(0.2 if i else 0.0)
        return i

    feed = ordered_map(work, range(100), workers=1, depth=8)
    assert next(feed) == 0
    feed.close()
    assert ran in ([0], [0, 1])
    assert not _feed_threads()
