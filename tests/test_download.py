"""ssd_eval.assets.download against a real HTTP server on 127.0.0.1: resume, fallback, checksums, locking,
downloads off (no request at all) and the minimum rate."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from http_server import FileServer, closed_port_url
from tqdm import tqdm

import ssd_eval
from ssd_eval.assets import download as download_module
from ssd_eval.assets.download import (
    DownloadFailed,
    DownloadsOff,
    Expected,
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
    ("name", "value", "line"),
    [
        (
            "SSD_EVAL_MIN_RATE",
            "fast",
            "SSD_EVAL_MIN_RATE='fast': expected bytes per second, a number >= 0 (0: no minimum); unset it "
            "for the default 32768",  # 32 KiB/s (docs/fetching.md)
        ),
        (
            "SSD_EVAL_MIN_RATE",
            "-1",
            "SSD_EVAL_MIN_RATE='-1': expected bytes per second, a number >= 0 (0: no minimum); unset it for "
            "the default 32768",
        ),
        (
            "SSD_EVAL_RATE_WINDOW",
            "0",
            "SSD_EVAL_RATE_WINDOW='0': expected seconds, a number > 0; unset it for the default 60",
        ),
    ],
)
def test_a_bad_minimum_rate_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, line: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(AssetError) as excinfo:
        MinRate.from_env()
    assert str(excinfo.value) == line


# --- hashes, defaults, the whole failure line ---------------------------------------------------------


def test_hash_file_is_sha256_unless_told_and_reads_every_byte(tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.write_bytes(b"a")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    abc = tmp_path / "abc"
    abc.write_bytes(b"abc")
    big = tmp_path / "big"
    big.write_bytes(BODY * 4 + b"!")  # more than one 1 MiB read, and one byte more

    assert (
        download_module.hash_file(one) == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    )
    assert (
        download_module.hash_file(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert (
        download_module.hash_file(abc, "md5") == "900150983cd24fb0d6963f7d28e17f72"
    )  # RFC 1321's test suite
    assert download_module.hash_file(big) == hashlib.sha256(BODY * 4 + b"!").hexdigest()


def test_every_source_failing_is_one_whole_line(server: FileServer, tmp_path: Path) -> None:
    missing = server.url("/gone.onnx")
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    wrong = "0" * 64

    with pytest.raises(DownloadFailed) as excinfo:
        download([missing, url], dest, sha256=wrong, size=len(BODY), progress=False)

    assert str(excinfo.value) == (
        f"could not download model.onnx to {dest}: every source failed: {missing} (HTTP 404 Not Found); "
        f"{url} (checksum mismatch: sha256 expected {wrong}, got {SHA256}; the download was deleted (this "
        "source, or a partial download resumed from an earlier one, serves a different file)). Check the "
        "network (or proxy settings), try a mirror, or put the file there by hand"
    )
    assert excinfo.value.failures == (
        f"{missing} (HTTP 404 Not Found)",
        f"{url} (checksum mismatch: sha256 expected {wrong}, got {SHA256}; the download was deleted (this "
        "source, or a partial download resumed from an earlier one, serves a different file))",
    )


def test_a_progress_bar_by_default_and_none_when_told(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.add("/model.onnx", BODY)

    download([url], tmp_path / "shown.onnx", sha256=SHA256)
    shown = capsys.readouterr().err
    download([url], tmp_path / "hidden.onnx", sha256=SHA256, progress=False)
    hidden = capsys.readouterr().err

    assert "shown.onnx" in shown
    assert hidden == ""


def test_the_socket_timeout_is_30_s_unless_told(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.add("/model.onnx", BODY)
    timeouts: list[float] = []
    real = urllib.request.urlopen

    def spy(request: urllib.request.Request, *, timeout: float) -> object:
        timeouts.append(timeout)
        return real(request, timeout=timeout)

    monkeypatch.setattr(download_module.urllib.request, "urlopen", spy)

    download([url], tmp_path / "a", progress=False)
    obtain([url], tmp_path / "b", progress=False)
    download([url], tmp_path / "c", progress=False, timeout=5)

    assert timeouts == [30.0, 30.0, 5]  # docs/fetching.md: "the 30 s socket timeout"


# --- one response: where it starts, what it may hold, how it is copied --------------------------------


def _response(status: int | None, **headers: str) -> SimpleNamespace:
    """A response's status and headers (`Content_Range` -> `Content-Range`), as urllib gives them."""
    message = http.client.HTTPMessage()
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    return SimpleNamespace(status=status, headers=message)


@pytest.mark.parametrize(
    ("response", "offset", "size", "planned"),
    [
        (_response(206, Content_Range="bytes 100-299/300"), 100, 300, (100, 300)),
        (_response(206, Content_Range="bytes 100-299/300"), 100, None, (100, 300)),  # no Content-Length
        (_response(206, Content_Range="bytes 100-299/*", Content_Length="200"), 100, 300, (100, 300)),
        (_response(206, Content_Range="bytes 100-299/*"), 100, None, (100, None)),
        (_response(200, Content_Length="300"), 100, 300, (0, 300)),  # Range ignored: start over
        (_response(200), 0, 300, (0, None)),  # no size said: the expected size bounds the copy
        (_response(None, Content_Length="300"), 100, 300, (0, 300)),  # file:// has no status
    ],
)
def test_where_a_response_starts_and_how_long_the_file_is(
    response: SimpleNamespace, offset: int, size: int | None, planned: tuple[int, int | None]
) -> None:
    assert download_module._plan(response, offset, Expected(size=size), url="u") == planned


@pytest.mark.parametrize(
    ("response", "offset", "size", "why"),
    [
        (
            _response(206, Content_Range="bytes 0-299/300"),
            100,
            300,
            "asked to resume at byte 100, the server resumed at 0",
        ),
        (_response(200, Content_Length="2500"), 0, 3000, "serves 2,500 bytes, expected 3,000"),
        (
            _response(206, Content_Range="bytes 100-3999/4000"),
            100,
            3000,
            "serves 4,000 bytes, expected 3,000",
        ),
        (
            _response(206, Content_Range="bytes 100-2499/*", Content_Length="2400"),
            100,
            3000,
            "serves 2,500 bytes, expected 3,000",
        ),
    ],
)
def test_a_response_that_cannot_continue_the_file_is_refused(
    response: SimpleNamespace, offset: int, size: int, why: str
) -> None:
    with pytest.raises(_TransferError) as excinfo:
        download_module._plan(response, offset, Expected(size=size), url="u")
    assert str(excinfo.value) == why


class _Body:
    """A response body that arrives in `pieces` (each read advancing `clock` by `every` s), then ends,
    or breaks with `error`."""

    def __init__(
        self,
        *pieces: bytes,
        error: BaseException | None = None,
        clock: list[float] | None = None,
        every: float = 0,
    ) -> None:
        self._pieces = list(pieces)
        self._error = error
        self._clock = clock
        self._every = every

    def read1(self, size: int) -> bytes:
        if self._clock is not None:
            self._clock[0] += self._every
        if self._pieces:
            return self._pieces.pop(0)
        if self._error is not None:
            raise self._error
        return b""


def _copy_into(part: Path, body: _Body, *, offset: int, limit: int | None, watch: _RateWatch) -> int:
    with part.open("ab") as out, tqdm(disable=True) as bar:
        return download_module._copy(
            body, out, download_module._Digests(["sha256"]), bar, offset=offset, limit=limit, watch=watch
        )


def test_a_body_longer_than_the_file_is_refused_and_emptied(tmp_path: Path) -> None:
    part = tmp_path / "model.onnx.part"

    # 10 + 10 + 10 bytes against a limit of 25: the third piece is refused before it is written
    with pytest.raises(_TransferError) as excinfo:
        _copy_into(
            part, _Body(b"a" * 10, b"b" * 10, b"c" * 10), offset=0, limit=25, watch=_RateWatch(MinRate())
        )

    assert str(excinfo.value) == "sent more than the expected 25 bytes"
    assert part.read_bytes() == b""  # the next source starts clean


def test_a_resumed_transfer_is_judged_by_the_bytes_it_brings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, watch = _watch_at(monkeypatch, MinRate(bytes_per_second=100, window=10))
    part = tmp_path / "model.onnx.part"
    part.write_bytes(b"\x00" * 1000)  # 1,000 bytes from an earlier run: not this source's rate
    body = _Body(b"x" * 10, b"y" * 10, clock=clock, every=5)

    with pytest.raises(_TransferError) as excinfo:
        _copy_into(part, body, offset=1000, limit=None, watch=watch)

    # 10 bytes at 5 s, 10 more at 10 s: 20 bytes in the first 10 s, 2 bytes/s (counting the 1,000 bytes
    # already there, 102 bytes/s, would pass)
    assert str(excinfo.value) == (
        "too slow: 20 bytes in the last 10 s, below the minimum rate of 100 bytes/s averaged over 10 s, set "
        "by SSD_EVAL_MIN_RATE / SSD_EVAL_RATE_WINDOW"
    )


def test_a_transfer_whose_last_byte_is_in_is_not_dropped_for_its_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, watch = _watch_at(monkeypatch, MinRate(bytes_per_second=100, window=10))
    part = tmp_path / "model.onnx.part"
    body = _Body(b"x" * 10, b"y" * 10, clock=clock, every=5)  # 20 bytes in 10 s: 2 bytes/s

    assert _copy_into(part, body, offset=0, limit=20, watch=watch) == 20  # but they are all the file
    assert part.read_bytes() == b"x" * 10 + b"y" * 10


def test_a_slow_source_that_delivers_the_last_byte_is_kept(server: FileServer, tmp_path: Path) -> None:
    """Found by mutation testing: the whole file from a slow source was dropped as too slow after its last
    byte, then downloaded again from the next source (after a 416 for `bytes=307200-`)."""
    slow = server.add("/mirror/model.onnx", BODY, trickle_after=len(BODY) - 1, trickle_every=0.6)
    good = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"

    fetch([slow, good], dest, min_rate=FLOOR)  # the last byte comes after more than a window

    assert server.ranges("/mirror/model.onnx") == [None] and server.ranges("/model.onnx") == []
    assert dest.read_bytes() == BODY


def test_a_connection_lost_mid_body_is_an_interruption() -> None:
    body = _Body(b"abc", error=ConnectionResetError(104, "Connection reset by peer"))
    received: list[bytes] = []

    with pytest.raises(download_module._Interrupted) as excinfo:
        received.extend(download_module._chunks(body))

    assert received == [b"abc"]
    assert str(excinfo.value) == "connection lost: ConnectionResetError(104, 'Connection reset by peer')"


def test_a_finished_part_of_the_wrong_size_is_deleted_with_one_line(tmp_path: Path) -> None:
    part = tmp_path / "model.onnx.part"
    part.write_bytes(b"x" * 1000)

    with pytest.raises(_TransferError) as excinfo:
        download_module._verify(part, download_module._Digests([]), Expected(size=2000))

    assert str(excinfo.value) == "delivered 1,000 bytes, expected 2,000; the download was deleted"
    assert not part.exists()


# --- what is asked, what a server's answer makes of the `.part` ---------------------------------------


def test_every_request_names_ssd_eval_and_asks_for_the_bytes_as_they_are(
    server: FileServer, tmp_path: Path
) -> None:
    url = server.add("/model.onnx", BODY, cut_after=CUT)

    fetch([url], tmp_path / "model.onnx")

    assert len(server.headers) == 2  # the first request and its resume
    for headers in server.headers:
        assert headers["User-Agent"] == f"ssd_eval/{ssd_eval.__version__}"
        # not gzip: the Range offsets and the checksums are of the file's own bytes
        assert headers["Accept-Encoding"].lower() == "identity"


def test_a_cut_that_brought_nothing_is_not_retried(server: FileServer, tmp_path: Path) -> None:
    dead = server.add("/dead.onnx", BODY, cut_after=0, cut_always=True)
    good = server.add("/model.onnx", BODY)

    fetch([dead, good], tmp_path / "model.onnx")

    assert server.ranges("/dead.onnx") == [None]  # no progress: the next source at once
    assert server.ranges("/model.onnx") == [None]


def test_a_source_that_keeps_cutting_is_named_with_how_far_it_got(server: FileServer, tmp_path: Path) -> None:
    flaky = server.add("/flaky.onnx", BODY, cut_after=1000, cut_always=True)

    with pytest.raises(DownloadFailed) as excinfo:
        fetch([flaky], tmp_path / "model.onnx")

    # 1 + MAX_RESUMES (3) attempts of 1,000 bytes each
    assert excinfo.value.failures == (f"{flaky} (connection closed after 4,000 of 307,200 bytes)",)


def test_a_server_hanging_up_without_an_answer_is_named(server: FileServer, tmp_path: Path) -> None:
    mute = server.add("/mute.onnx", BODY, hang_up=True)

    with pytest.raises(DownloadFailed) as excinfo:
        fetch([mute], tmp_path / "model.onnx")

    assert excinfo.value.failures == (
        f"{mute} (cannot connect: Remote end closed connection without response)",
    )


def test_a_failing_source_leaves_the_part_for_the_next_to_resume(server: FileServer, tmp_path: Path) -> None:
    missing = server.url("/gone.onnx")
    good = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    part_path(dest).write_bytes(BODY[:CUT])

    fetch([missing, good], dest)

    assert server.ranges("/gone.onnx") == [f"bytes={CUT}-"]  # a 404 is not a 416: asked once
    assert server.ranges("/model.onnx") == [f"bytes={CUT}-"]
    assert dest.read_bytes() == BODY


def test_a_finished_part_with_other_bytes_is_deleted_and_downloaded_again(
    server: FileServer, tmp_path: Path
) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    part_path(dest).write_bytes(b"\x00" * len(BODY))

    fetch([url], dest)

    assert server.ranges("/model.onnx") == [None]
    assert dest.read_bytes() == BODY and not part_path(dest).exists()


def test_a_cut_is_resumed_when_only_the_checksum_is_known(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY, cut_after=CUT)
    dest = tmp_path / "model.onnx"

    download([url], dest, sha256=SHA256, progress=False)  # the size comes from the server

    assert server.ranges("/model.onnx") == [None, f"bytes={CUT}-"]
    assert dest.read_bytes() == BODY


def test_a_cut_is_resumed_when_the_server_sends_no_length(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY, cut_after=CUT, length=False)
    dest = tmp_path / "model.onnx"

    fetch([url], dest)  # the expected size tells that the body stopped short

    assert server.ranges("/model.onnx") == [None, f"bytes={CUT}-"]
    assert dest.read_bytes() == BODY


def test_a_body_without_a_length_longer_than_the_file_is_refused(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY + b"\x00" * 1000, length=False)
    dest = tmp_path / "model.onnx"

    with pytest.raises(DownloadFailed) as excinfo:
        fetch([url], dest)

    assert excinfo.value.failures == (f"{url} (sent more than the expected 307,200 bytes)",)
    assert not dest.exists()


def test_a_destination_that_cannot_be_written_is_one_whole_line(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/model.onnx", BODY)
    (tmp_path / "a-file").write_bytes(b"")
    dest = tmp_path / "a-file" / "model.onnx"

    with pytest.raises(AssetError) as excinfo:
        fetch([url], dest)

    assert str(excinfo.value) == (
        f"cannot write {dest} (File exists): free some space or choose another cache folder (--dest, "
        "SSD_EVAL_HOME or assets.cache)"
    )


def test_downloads_off_name_the_size_of_a_file_whose_size_is_not_known(
    server: FileServer, tmp_path: Path
) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"\x00" * len(BODY))

    with pytest.raises(DownloadsOff) as excinfo:
        download([url], dest, sha256=SHA256, allow_download=False)

    assert excinfo.value.state == "has 307,200 bytes but not the expected sha256"
    assert server.connections == 0


def test_md5_is_checked_where_it_is_not_allowed_for_security(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIPS-mode OpenSSL refuses md5 unless it is declared not for security: COCO's checksums are md5."""
    real = hashlib.new

    def fips_new(name: str, *args: object, usedforsecurity: bool = True) -> object:
        if name.lower() == "md5" and usedforsecurity:
            raise ValueError("[digital envelope routines] unsupported")
        return real(name, *args, usedforsecurity=usedforsecurity)  # type: ignore[arg-type]

    monkeypatch.setattr(download_module.hashlib, "new", fips_new)
    url = server.add("/data.zip", BODY)

    download([url], tmp_path / "data.zip", md5=MD5, size=len(BODY), progress=False)

    assert (tmp_path / "data.zip").read_bytes() == BODY


# --- the progress bar ----------------------------------------------------------------------------------


def test_the_bar_shows_the_file_from_the_bytes_already_there_and_goes_away_when_done(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.add("/model.onnx", BODY)
    dest = tmp_path / "model.onnx"
    part_path(dest).write_bytes(BODY[:CUT])

    obtain([url], dest, sha256=SHA256, size=len(BODY))  # the default: a bar

    err = capsys.readouterr().err
    # 100,000 of 307,200 bytes: 33%, 97.7 KiB of 300 KiB, labelled with the file's name
    assert "model.onnx:  33%|" in err and " 97.7k/300k " in err
    assert "?B/s]" in err  # bytes per second
    assert ".part" not in err
    assert "\n" not in err  # it leaves no line behind


def test_the_bar_follows_the_terminal_width(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    columns = [61]
    monkeypatch.setattr(os, "get_terminal_size", lambda *_: os.terminal_size((columns[0], 20)))
    with (tmp_path / "stderr").open("w") as terminal:  # a stream with a file descriptor, as a terminal has
        monkeypatch.setattr(sys, "stderr", terminal)
        with download_module._bar(tmp_path / "model.onnx.part", 307_200, 0, True) as bar:
            columns[0] = 81  # the terminal was widened
            bar.update(1000)
            bar.refresh()
    lines = [line for line in re.split(r"[\r\n]", (tmp_path / "stderr").read_text()) if line.strip()]

    assert [len(line) for line in lines] == [60, 80]  # the whole width but the last column


# --- the minimum rate at its bounds --------------------------------------------------------------------


def test_a_source_at_exactly_the_minimum_rate_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, watch = _watch_at(monkeypatch, MinRate(bytes_per_second=100, window=10))
    clock[0] += 10
    watch.add(1000)  # 100 bytes/s over the window: not below


def test_a_minimum_of_one_byte_a_second_is_a_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, watch = _watch_at(monkeypatch, MinRate(bytes_per_second=1, window=10))
    clock[0] += 10
    with pytest.raises(
        _TransferError, match=r"^too slow: 5 bytes in the last 10 s, below the minimum rate of 1 "
    ):
        watch.add(5)
