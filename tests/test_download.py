"""ssd_eval.assets.download against a real HTTP server on 127.0.0.1: resume, fallback, checksums, locking."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_server import FileServer, closed_port_url

from ssd_eval.assets import download as download_module
from ssd_eval.assets.download import download, part_path
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
