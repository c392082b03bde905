"""ssd_eval.assets.download against a real HTTP server on 127.0.0.1: resume, fallback, checksums, locking,
downloads off (no request at all) and the minimum rate."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_server import FileServer, closed_port_url

from ssd_eval.assets import download as download_module
from ssd_eval.assets.download import (
    DownloadFailed,
    DownloadsOff,
    MinRate,
    _RateWatch,
    _TransferError,
    download,
    obtain,
    part_path,
)
from ssd_eval.errors import AssetError

BODY = bytes(range(256)) * 1200  # 307,200 bytes
SHA256 = hashlib.sha256(BODY).hexdigest()
MD5 = hashlib.md5(BODY).hexdigest()
CUT = 100_000


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as running:
        yield running


def fetch(urls: list[str], dest: Path, **options: object) -> Path:
    """`download` with the right checksums and no progress bar unless asked."""
    options.setdefault("progress", False)
    return download(urls, dest, sha256=SHA256, md5=MD5, size=len(BODY), timeout=5, **options)  # type: ignore[arg-type]


def test_full_download_is_verified_and_leaves_nothing_behind(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "sub" / "model.onnx"

    assert fetch([url], dest) == dest

    assert dest.read_bytes() == BODY
    assert sorted(path.name for path in dest.parent.iterdir()) == ["model.onnx"]  # no .part, no .lock
    assert server.ranges("/model.onnx") == [None]


def test_progress_bar_goes_to_stderr(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.add("/model.onnx", BODY)
    fetch([url], tmp_path / "model.onnx", progress=True)
    captured = capsys.readouterr()
    assert "model.onnx" in captured.err
    assert captured.out == ""


def test_transfer_cut_mid_file_is_resumed_with_a_range_request(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY, cut_after=CUT)
    dest = tmp_path / "model.onnx"

    fetch([url], dest)

    assert server.ranges("/model.onnx") == [None, f"bytes={CUT}-"]
    assert dest.read_bytes() == BODY


def test_part_left_by_an_earlier_run_is_resumed(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    part_path(dest).write_bytes(BODY[:CUT])

    fetch([url], dest)

    assert server.ranges("/model.onnx") == [f"bytes={CUT}-"]
    assert dest.read_bytes() == BODY
    assert not part_path(dest).exists()


def test_server_without_range_support_starts_over_cleanly(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY, ranges=False)
    dest = tmp_path / "model.onnx"
    part_path(dest).write_bytes(b"\xff" * CUT)  # not even a prefix of BODY: it must be truncated

    fetch([url], dest)

    assert server.ranges("/model.onnx") == [f"bytes={CUT}-"]  # asked; got a 200 with everything
    assert dest.read_bytes() == BODY


def test_checksum_mismatch_deletes_the_download_and_says_what_and_where(
    server: FileServer, tmp_path: Path
) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    wrong = "0" * 64

    with pytest.raises(AssetError) as excinfo:
        download([url], dest, sha256=wrong, size=len(BODY), progress=False)

    message = str(excinfo.value)
    assert f"expected {wrong}" in message and f"got {SHA256}" in message and url in message
    assert "\n" not in message
    assert not dest.exists() and not part_path(dest).exists()


def test_md5_mismatch_is_caught_too(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/data.zip", BODY)
    with pytest.raises(AssetError, match=f"md5 expected {'a' * 32}, got {MD5}"):
        download([url], tmp_path / "data.zip", md5="a" * 32, progress=False)


def test_a_resumed_prefix_is_part_of_the_checksum(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    part_path(dest).write_bytes(b"\x00" * CUT)  # a corrupt prefix the server will happily continue

    with pytest.raises(AssetError, match="checksum mismatch"):
        fetch([url], dest)

    assert server.ranges("/model.onnx") == [f"bytes={CUT}-"]
    assert not part_path(dest).exists()  # the next run starts clean


def test_404_falls_back_to_the_next_url(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"

    fetch([server.url("/gone.onnx"), url], dest)

    assert [path for path, _ in server.requests] == ["/gone.onnx", "/model.onnx"]
    assert dest.read_bytes() == BODY


def test_refused_connection_falls_back_to_the_next_url(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    fetch([closed_port_url(), url], tmp_path / "model.onnx")
    assert server.ranges("/model.onnx") == [None]


def test_a_url_serving_another_size_is_skipped(server: FileServer, tmp_path: Path) -> None:
    pointer = server.add("/pointer", b"version https://git-lfs.github.com/spec/v1\n")
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"

    fetch([pointer, url], dest)

    assert dest.read_bytes() == BODY


def test_all_urls_failing_lists_each_url_and_its_failure(server: FileServer, tmp_path: Path) -> None:
    missing = server.url("/gone.onnx")
    refused = closed_port_url()
    dest = tmp_path / "model.onnx"

    with pytest.raises(AssetError) as excinfo:
        fetch([missing, refused], dest)

    message = str(excinfo.value)
    assert f"{missing} (HTTP 404" in message
    assert f"{refused} (cannot connect" in message
    assert str(dest) in message
    assert not dest.exists()


def test_no_url_at_all_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="no URL"):
        download([], tmp_path / "x")


def test_a_part_larger_than_the_file_starts_over(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    part_path(dest).write_bytes(b"\x00" * (len(BODY) + 10))

    fetch([url], dest)

    assert server.ranges("/model.onnx") == [None]
    assert dest.read_bytes() == BODY


def test_range_not_satisfiable_starts_over(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    part_path(dest).write_bytes(b"\x00" * (len(BODY) + 10))

    download([url], dest, sha256=SHA256, progress=False)  # no size known: the server's 416 tells

    assert server.ranges("/model.onnx") == [f"bytes={len(BODY) + 10}-", None]
    assert dest.read_bytes() == BODY


def test_a_finished_part_is_verified_and_moved_without_a_request(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    part_path(dest).write_bytes(BODY)

    fetch([url], dest)

    assert server.requests == []
    assert dest.read_bytes() == BODY


def test_a_complete_destination_returns_at_once(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    dest.write_bytes(BODY)

    assert fetch([url], dest) == dest
    assert server.requests == []


def test_a_wrong_destination_is_replaced(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"\x00" * len(BODY))

    fetch([url], dest)

    assert dest.read_bytes() == BODY


def test_repeated_cuts_resume_a_few_times_then_the_next_url_continues(
    server: FileServer, tmp_path: Path
) -> None:
    flaky = server.add("/flaky.onnx", BODY, cut_after=1000, cut_always=True)
    good = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"

    fetch([flaky, good], dest)

    attempts = 1 + download_module.MAX_RESUMES
    assert server.ranges("/flaky.onnx") == [None] + [f"bytes={1000 * n}-" for n in range(1, attempts)]
    assert server.ranges("/model.onnx") == [f"bytes={1000 * attempts}-"]
    assert dest.read_bytes() == BODY


def test_file_urls_work_for_a_mirror_on_a_shared_drive(tmp_path: Path) -> None:
    source = tmp_path / "mirror" / "model.onnx"
    source.parent.mkdir()
    source.write_bytes(BODY)
    dest = tmp_path / "cache" / "model.onnx"

    fetch([source.as_uri()], dest)

    assert dest.read_bytes() == BODY


def test_two_downloads_of_one_file_make_one_transfer(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY, delay=0.3)
    dest = tmp_path / "model.onnx"
    results: list[Path | BaseException] = []

    def worker() -> None:
        try:
            results.append(fetch([url], dest))
        except BaseException as exc:  # reported by the assertion below
            results.append(exc)

    first = threading.Thread(target=worker)
    first.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:  # the first holds the lock now
        time.sleep(0.01)
    second = threading.Thread(target=worker)
    second.start()
    first.join(timeout=10)
    second.join(timeout=10)

    assert results == [dest, dest]
    assert server.ranges("/model.onnx") == [None]  # the second waited, then found the file complete
    assert not dest.with_name("model.onnx.lock").exists()


def test_an_unwritable_destination_is_a_clear_error(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    (tmp_path / "a-file").write_bytes(b"")

    with pytest.raises(AssetError, match=r"cannot write .*choose another cache folder"):
        fetch([url], tmp_path / "a-file" / "model.onnx")


# --- downloads off: the one gate before any request -----------------------------------------------


@pytest.mark.parametrize(
    ("on_disk", "part", "state"),
    [
        (None, None, "is missing"),
        (BODY[:10], None, f"has 10 bytes, expected {len(BODY):,}"),
        (b"\x00" * len(BODY), None, "has the expected size but not the expected sha256 and md5"),
        (None, BODY[:CUT], f"is missing (a partial download, model.onnx.part, holds {CUT:,} bytes)"),
    ],
)
def test_downloads_off_make_no_request_and_say_what_is_wrong(
    server: FileServer, tmp_path: Path, on_disk: bytes | None, part: bytes | None, state: str
) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    if on_disk is not None:
        dest.write_bytes(on_disk)
    if part is not None:
        part_path(dest).write_bytes(part)

    with pytest.raises(DownloadsOff) as excinfo:
        fetch([url, url], dest, allow_download=False)

    assert excinfo.value.state == state and excinfo.value.dest == dest
    assert server.connections == 0
    assert (dest.read_bytes() if dest.exists() else None) == on_disk  # left as it was
    assert (part_path(dest).read_bytes() if part_path(dest).exists() else None) == part
    assert not dest.with_name("model.onnx.lock").exists()  # nothing written at all


def test_downloads_off_with_no_folder_writes_nothing(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadsOff, match="is missing; downloads are off"):
        fetch([server.add("/model.onnx", BODY)], tmp_path / "absent" / "model.onnx", allow_download=False)
    assert list(tmp_path.iterdir()) == [] and server.connections == 0


def test_downloads_off_still_accept_what_is_on_disk(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    complete = tmp_path / "complete.onnx"
    complete.write_bytes(BODY)
    finished = tmp_path / "finished.onnx"
    part_path(finished).write_bytes(BODY)  # a run stopped between the last byte and the rename

    assert obtain([url], complete, sha256=SHA256, size=len(BODY), allow_download=False) == (complete, False)
    assert obtain([url], finished, sha256=SHA256, size=len(BODY), allow_download=False) == (finished, False)

    assert finished.read_bytes() == BODY and not part_path(finished).exists()
    assert server.connections == 0


def test_downloads_off_need_no_url(tmp_path: Path) -> None:
    with pytest.raises(DownloadsOff):
        download([], tmp_path / "x", size=1, allow_download=False)


def test_obtain_says_whether_it_downloaded(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    assert obtain([url], dest, sha256=SHA256, size=len(BODY), progress=False) == (dest, True)
    assert obtain([url], dest, sha256=SHA256, size=len(BODY), progress=False) == (dest, False)


# --- a checksum mismatch is one more failed source ------------------------------------------------


def test_a_source_serving_another_file_falls_back_to_the_next(server: FileServer, tmp_path: Path) -> None:
    bad = server.add("/mirror/model.onnx", b"\x00" * len(BODY))
    good = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"

    fetch([bad, good], dest)

    assert server.ranges("/model.onnx") == [None]  # the bad bytes were deleted: the next source starts clean
    assert dest.read_bytes() == BODY


# --- the minimum rate -------------------------------------------------------------------------------

FLOOR = MinRate(bytes_per_second=10_000, window=0.5)


def test_a_trickling_source_is_abandoned_and_the_next_resumes_its_bytes(
    server: FileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slow = server.add("/mirror/model.onnx", BODY, trickle_after=CUT, trickle_every=0.05)
    good = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"

    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="ssd_eval.assets.download"):
        fetch([slow, good], dest, min_rate=FLOOR)

    assert time.monotonic() - started < 3
    (resumed,) = server.ranges("/model.onnx")
    assert resumed is not None and CUT <= int(resumed.removeprefix("bytes=").rstrip("-")) < len(BODY)
    assert dest.read_bytes() == BODY  # and the whole file, prefix included, verified
    assert "too slow" in caplog.text and "below the minimum rate of 10,000 bytes/s averaged over 0.5 s" in (
        caplog.text
    )


def test_when_only_a_trickle_is_left_the_error_names_the_bound_and_nothing_looks_complete(
    server: FileServer, tmp_path: Path
) -> None:
    slow = server.add("/model.onnx", BODY, trickle_after=CUT, trickle_every=0.05)
    dest = tmp_path / "model.onnx"

    with pytest.raises(DownloadFailed) as excinfo:
        fetch([slow], dest, min_rate=FLOOR)

    message = str(excinfo.value)
    assert (
        f"{slow} (too slow: " in message and "bytes in the last 0.5 s, below the minimum rate of" in message
    )
    assert "set by SSD_EVAL_MIN_RATE / SSD_EVAL_RATE_WINDOW" in message and "\n" not in message
    assert not dest.exists()
    assert CUT <= part_path(dest).stat().st_size < len(BODY)  # kept for a resume, under its .part name


def test_a_trickled_prefix_that_is_wrong_fails_the_checksum_and_the_retry_starts_clean(
    server: FileServer, tmp_path: Path
) -> None:
    corrupt = b"\xff" * CUT + BODY[CUT:]
    slow = server.add("/mirror/model.onnx", corrupt, trickle_after=CUT, trickle_every=0.05)
    good = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"

    with pytest.raises(DownloadFailed, match=r"checksum mismatch: sha256 expected"):
        fetch([slow, good], dest, min_rate=FLOOR)  # the origin continued the mirror's bad prefix
    assert not dest.exists() and not part_path(dest).exists()

    fetch([good], dest, min_rate=FLOOR)  # the retry

    assert server.ranges("/model.onnx")[-1] is None and dest.read_bytes() == BODY


def _watch_at(monkeypatch: pytest.MonkeyPatch, floor: MinRate) -> tuple[list[float], _RateWatch]:
    clock = [100.0]
    monkeypatch.setattr(download_module.time, "monotonic", lambda: clock[0])
    return clock, _RateWatch(floor)


def test_the_rate_is_averaged_over_the_last_window(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, watch = _watch_at(monkeypatch, MinRate(bytes_per_second=100, window=10))
    received = 0
    for _ in range(30):  # 120 bytes a second for 30 s: never below 100
        clock[0] += 1
        received += 120
        watch.add(received)
    # Then 50 bytes a second: after k such seconds the last 10 s hold 120 * (10 - k) + 50 * k bytes,
    # 1,130 (k=1), 1,060 (k=2), then 990 (k=3): below 100 bytes/s at last.
    for _ in range(2):
        clock[0] += 1
        received += 50
        watch.add(received)
    clock[0] += 1
    received += 50
    with pytest.raises(_TransferError, match="too slow: 990 bytes in the last 10 s"):
        watch.add(received)


def test_no_verdict_before_a_whole_window_and_none_at_all_with_a_zero_floor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, watch = _watch_at(monkeypatch, MinRate(bytes_per_second=100, window=10))
    clock[0] += 9.9
    watch.add(1)  # 1 byte in 9.9 s, but the window is not full yet
    clock[0] += 0.2
    with pytest.raises(_TransferError):
        watch.add(2)
    clock, off = _watch_at(monkeypatch, MinRate(bytes_per_second=0, window=1))
    clock[0] += 1000
    off.add(1)


@pytest.mark.parametrize(
    ("rate", "window", "expected"),
    [
        (None, None, MinRate()),
        ("0", "5", MinRate(bytes_per_second=0, window=5)),
        ("1e6", "0.5", MinRate(bytes_per_second=1_000_000, window=0.5)),
    ],
)
def test_the_minimum_rate_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, rate: str | None, window: str | None, expected: MinRate
) -> None:
    for name, value in (("SSD_EVAL_MIN_RATE", rate), ("SSD_EVAL_RATE_WINDOW", window)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert MinRate.from_env() == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [("SSD_EVAL_MIN_RATE", "fast"), ("SSD_EVAL_MIN_RATE", "-1"), ("SSD_EVAL_RATE_WINDOW", "0")],
)
def test_a_bad_minimum_rate_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(AssetError, match=rf"^{name}='{value}': expected .*; unset it for the default"):
        MinRate.from_env()
