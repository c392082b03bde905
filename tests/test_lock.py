"""assets.lock: one holder at a time of `<dest>.lock`, also when a holder removes the file a waiter locked."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from ssd_eval.assets.lock import exclusive

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock locks (POSIX)")


def is_locked(lock: Path) -> bool:
    """Whether someone holds `lock` (asked without waiting, through a descriptor of our own)."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_lock_file_is_there_and_held_while_held_and_gone_after(tmp_path: Path) -> None:
    dest = tmp_path / "model.onnx"
    lock = tmp_path / "model.onnx.lock"

    with exclusive(dest):
        assert lock.is_file() and is_locked(lock)

    assert not lock.exists()


def test_a_waiter_whose_lock_file_was_removed_holds_a_new_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The holder removes the lock file as it leaves; the waiter that then gets the old file's lock must
    take a new file, else a newcomer would create one and hold it too."""
    dest = tmp_path / "model.onnx"
    lock = tmp_path / "model.onnx.lock"
    inside = threading.Event()
    leave = threading.Event()
    seen: list[tuple[bool, bool]] = []

    def waiter() -> None:
        with exclusive(dest):
            seen.append((lock.is_file(), lock.is_file() and is_locked(lock)))  # what a newcomer finds
            inside.set()
            leave.wait(10)

    with caplog.at_level(logging.INFO, logger="ssd_eval.assets.lock"), exclusive(dest):
        thread = threading.Thread(target=waiter)
        thread.start()
        deadline = time.monotonic() + 10
        while "another process is downloading model.onnx" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # the waiter is now blocked on the lock file about to be removed
        assert not inside.is_set()
    assert inside.wait(10)
    leave.set()
    thread.join(10)

    assert seen == [(True, True)]
    assert not lock.exists()
