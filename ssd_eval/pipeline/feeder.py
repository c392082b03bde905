"""An ordered, bounded, parallel map: decode and preprocess images ahead of inference.

Worker threads run `fn` on the next few items while the caller consumes results strictly in input
order. At most `depth` items are in flight, so memory stays bounded (a 1200x1200 input is 17 MB).
Threads, not processes: Pillow's decoder and resampler, OpenCV and numpy's element-wise loops
release the GIL, and a thread hands a 17 MB tensor over without pickling it. An exception in `fn`
is raised to the caller at that item's turn (items before it are all delivered first). When the
caller stops early (an error, Ctrl-C, a `break`) the pending items are cancelled and the running
ones finish before the iterator returns: no thread outlives it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

MAX_AUTO_WORKERS = 4


def default_workers() -> int:
    """Automatic worker count: one per CPU, at most 4 (inference needs cores too)."""
    return max(1, min(MAX_AUTO_WORKERS, os.cpu_count() or 1))


def ordered_map(
    fn: Callable[[In], Out], items: Iterable[In], *, workers: int, depth: int | None = None
) -> Generator[Out, None, None]:
    """`map(fn, items)` computed by `workers` threads, at most `depth` (default 2 x workers) ahead.

    `workers == 0` runs `fn` in the caller's thread, one item at a time (the reference path).
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers == 0:
        for item in items:
            yield fn(item)
        return
    limit = max(1, depth if depth is not None else 2 * workers)
    source = iter(items)
    pending: deque[Future[Out]] = deque()
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ssd_eval-feed")
    try:
        for item in source:
            pending.append(executor.submit(fn, item))
            if len(pending) >= limit:
                break
        while pending:
            result = pending.popleft().result()
            for item in source:
                pending.append(executor.submit(fn, item))
                break
            yield result
    finally:  # the items not started are cancelled (the pending futures), the running ones finish
        executor.shutdown(wait=True, cancel_futures=True)
