"""The writers of ssd_eval/files.py: a file written whole is replaced atomically (never through a link),
a file appended to or locked is opened only if it is a regular file of its own, and each refusal is
one whole line (docs/operations.md, "Shared, read-only and concurrent folders")."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssd_eval import files
from ssd_eval.errors import OutputError
from ssd_eval.files import (
    atomic_writer,
    check_own_files,
    file_sha256,
    open_append,
    open_own_file,
    own_folder,
    sha256_bytes,
    write_json_atomic,
    write_text_atomic,
)

# The tail of every refusal (docs/operations.md: one line, what to do).
TAIL = (
    ": ssd-eval writes only to files and folders of its own there (a link could redirect its writes "
    "elsewhere); remove it (or replace it by a copy of the file it stands for), then run again"
)
APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _refused(call, *args) -> str:
    with pytest.raises(OutputError) as info:
        call(*args)
    return str(info.value)


# sha256


def test_sha256_of_bytes_and_of_a_file_are_the_fips_180_2_values(tmp_path):
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2, B.1
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_bytes(b"abc") == abc
    assert sha256_bytes(b"") == empty
    (tmp_path / "abc").write_bytes(b"abc")
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "abc") == abc
    assert file_sha256(tmp_path / "empty") == empty


def test_file_sha256_reads_in_blocks_of_one_mib(tmp_path, monkeypatch):
    """A model file of gigabytes is never read whole: reads of 1 MiB, the digest of every byte."""
    data = bytes(range(256)) * (10 * 1024 + 1)  # 2.5 MiB and 256 bytes
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    sizes: list[object] = []
    real_open = Path.open

    class Spy:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def read(self, size=-1):
            sizes.append(size)
            return self.handle.read(size)

    monkeypatch.setattr(Path, "open", lambda self, *a, **k: Spy(real_open(self, *a, **k)))
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert sizes == [1 << 20] * 4  # three blocks with bytes, the empty read that ends


# atomic writes


def test_a_text_file_is_written_whole_as_utf8_with_the_umask_permissions(tmp_path, umask_022):
    path = tmp_path / "summary.md"
    write_text_atomic(path, "mAP ≥ 0.2\n")
    assert path.read_bytes() == "mAP ≥ 0.2\n".encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600: colleagues can read it
    assert os.listdir(tmp_path) == ["summary.md"]  # no temporary file left


def test_json_is_written_indented_with_a_final_newline_and_no_nan(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"ap": 0.25, "ids": [1, 2], "name": "é"})
    assert path.read_text(encoding="utf-8") == (
        '{\n  "ap": 0.25,\n  "ids": [\n    1,\n    2\n  ],\n  "name": "\\u00e9"\n}\n'
    )
    with pytest.raises(ValueError, match=r"^Out of range float values are not JSON compliant"):
        write_json_atomic(path, {"ap": float("nan")})
    assert json.loads(path.read_text(encoding="utf-8"))["ap"] == 0.25  # the old content stays
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_a_binary_writer_writes_bytes(tmp_path):
    path = tmp_path / "pr_curve.png"
    with atomic_writer(path) as handle:
        handle.write(b"\x89PNG\r\n")
        assert not path.exists()  # nothing under the name until the block ends
    assert path.read_bytes() == b"\x89PNG\r\n"


def test_the_text_writer_encodes_utf8_whatever_the_locale(tmp_path, monkeypatch):
    """The locale's encoding (ASCII under LANG=C) must not decide how a config's path is written."""
    import codecs

    opened: list[dict[str, object]] = []
    real = os.fdopen

    def fdopen(fd, mode, **kwargs):
        opened.append({"mode": mode, **kwargs})
        return real(fd, mode, **kwargs)

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    write_text_atomic(tmp_path / "config.yaml", "x\n")
    assert [o["mode"] for o in opened] == ["w"]
    assert codecs.lookup(str(opened[0]["encoding"])).name == "utf-8"


def test_the_temporary_file_is_name_random_tmp_beside_the_target(tmp_path, monkeypatch):
    replaced: list[tuple[str, str]] = []
    real = os.replace

    def replace(src, dst):
        replaced.append((str(src), str(dst)))
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    write_text_atomic(tmp_path / "junit.xml", "<testsuite/>\n")
    [(src, dst)] = replaced
    assert dst == str(tmp_path / "junit.xml")
    assert Path(src).parent == tmp_path
    assert re.fullmatch(r"junit\.xml\.[0-9a-f]{8}\.tmp", Path(src).name), src


def test_a_temporary_name_taken_is_skipped_then_after_100_tries_refused(tmp_path, monkeypatch):
    tokens: list[int] = []
    names = iter(["aaaaaaaa", "bbbbbbbb"])

    def token_hex(nbytes):
        tokens.append(nbytes)
        return next(names)

    monkeypatch.setattr(files.secrets, "token_hex", token_hex)
    (tmp_path / "metrics.json.aaaaaaaa.tmp").write_text("someone else's", encoding="utf-8")
    write_text_atomic(tmp_path / "metrics.json", "{}\n")
    assert tokens == [4, 4]  # 4 random bytes: 8 hex digits
    assert (tmp_path / "metrics.json").read_text(encoding="utf-8") == "{}\n"
    assert (tmp_path / "metrics.json.aaaaaaaa.tmp").read_text(encoding="utf-8") == "someone else's"
    assert not (tmp_path / "metrics.json.bbbbbbbb.tmp").exists()

    tries = [0]

    def same_token(nbytes):
        tries[0] += 1
        return "aaaaaaaa"

    monkeypatch.setattr(files.secrets, "token_hex", same_token)
    with pytest.raises(FileExistsError) as info:
        write_text_atomic(tmp_path / "metrics.json", "{}\n")
    assert tries[0] == 100
    assert str(info.value) == f"[Errno 17] no free temporary file name: '{tmp_path / 'metrics.json'}'"


def test_a_link_at_the_name_is_replaced_never_followed(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours\n", encoding="utf-8")
    path = tmp_path / "run" / "metrics.json"
    path.parent.mkdir()
    path.symlink_to(target)
    write_text_atomic(path, "{}\n")
    assert not path.is_symlink() and path.read_text(encoding="utf-8") == "{}\n"
    assert target.read_text(encoding="utf-8") == "not yours\n"


def test_a_temporary_name_planted_as_a_link_is_not_written_through(tmp_path, monkeypatch):
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours\n", encoding="utf-8")
    names = iter(["aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(files.secrets, "token_hex", lambda nbytes: next(names))
    (tmp_path / "metrics.json.aaaaaaaa.tmp").symlink_to(target)
    write_text_atomic(tmp_path / "metrics.json", "{}\n")
    assert target.read_text(encoding="utf-8") == "not yours\n"
    assert (tmp_path / "metrics.json").read_text(encoding="utf-8") == "{}\n"


def test_a_failing_block_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt), atomic_writer(path, text=True) as handle:
        handle.write("half")
        raise KeyboardInterrupt
    assert path.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_a_failing_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    def replace(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(OSError, match="Invalid cross-device link"):
        write_text_atomic(tmp_path / "metrics.json", "{}\n")
    assert os.listdir(tmp_path) == []


def test_when_the_clean_up_fails_too_the_first_error_is_raised(tmp_path, monkeypatch):
    """A file system that fails twice: the write, then the removal of the temporary file."""

    def unlink(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.os, "unlink", unlink)
    with pytest.raises(KeyboardInterrupt), atomic_writer(tmp_path / "a.json") as handle:
        handle.write(b"x")
        raise KeyboardInterrupt
    assert len(os.listdir(tmp_path)) == 1  # the temporary file, which could not be removed


def test_a_failing_fdopen_closes_the_file_and_removes_it(tmp_path, monkeypatch):
    def fdopen(fd, mode, **kwargs):
        raise MemoryError

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    before = _open_fds()
    with pytest.raises(MemoryError):
        write_text_atomic(tmp_path / "a.json", "{}\n")
    assert _open_fds() == before
    assert os.listdir(tmp_path) == []


def test_a_failing_fdopen_whose_clean_up_fails_raises_the_first_error(tmp_path, monkeypatch):
    def fdopen(fd, mode, **kwargs):
        raise MemoryError

    def unlink(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    monkeypatch.setattr(files.os, "unlink", unlink)
    with pytest.raises(MemoryError):
        write_text_atomic(tmp_path / "a.json", "{}\n")


def test_the_file_and_then_its_folder_are_synced(tmp_path, monkeypatch):
    synced: list[tuple[str, bool, bool]] = []
    real = os.fsync

    def fsync(fd):
        mode = os.fstat(fd).st_mode
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), stat.S_ISDIR(mode), os.get_inheritable(fd)))
        real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    before = _open_fds()
    write_text_atomic(tmp_path / "metrics.json", "{}\n")
    assert len(synced) == 2
    assert re.fullmatch(r"metrics\.json\.[0-9a-f]{8}\.tmp", Path(synced[0][0]).name)
    assert synced[0][1:] == (False, False)  # the temporary file, opened close-on-exec
    assert synced[1] == (str(tmp_path), True, False)  # the folder, opened close-on-exec
    assert _open_fds() == before


def test_a_folder_that_cannot_be_synced_is_no_error(tmp_path, monkeypatch):
    real = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")  # some file systems cannot sync a folder
        real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    before = _open_fds()
    write_text_atomic(tmp_path / "metrics.json", "{}\n")
    assert (tmp_path / "metrics.json").read_text(encoding="utf-8") == "{}\n"
    assert _open_fds() == before  # the folder's descriptor is closed all the same


def test_a_folder_that_cannot_be_opened_is_no_error(tmp_path, monkeypatch):
    real = os.open

    def open_(path, flags, *args):
        if flags & os.O_DIRECTORY:
            raise OSError(errno.EACCES, "Permission denied")
        return real(path, flags, *args)

    monkeypatch.setattr(files.os, "open", open_)
    write_text_atomic(tmp_path / "metrics.json", "{}\n")
    assert (tmp_path / "metrics.json").read_text(encoding="utf-8") == "{}\n"


def test_the_folder_is_opened_as_a_folder(tmp_path, monkeypatch):
    flags_seen: list[int] = []
    real = os.open

    def open_(path, flags, *args):
        flags_seen.append(flags)
        return real(path, flags, *args)

    monkeypatch.setattr(files.os, "open", open_)
    write_text_atomic(tmp_path / "metrics.json", "{}\n")
    folder_flags = flags_seen[-1]
    assert folder_flags & os.O_DIRECTORY
    assert folder_flags & (os.O_WRONLY | os.O_RDWR) == 0


# files appended to and locked


def test_an_appended_file_is_created_then_appended_to(tmp_path, umask_022):
    path = tmp_path / "history.jsonl"
    with open_append(path, text=True) as handle:
        handle.write('{"é": 1}\n')
    with open_append(path, text=True) as handle:
        handle.write("{}\n")
    assert path.read_bytes() == '{"é": 1}\n{}\n'.encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_binary_append_is_unbuffered(tmp_path):
    path = tmp_path / "model.onnx.part"
    path.write_bytes(b"ab")
    with open_append(path) as handle:
        handle.write(b"cd")
        assert path.read_bytes() == b"abcd"  # on disk at once, before any flush or close


def test_a_text_append_encodes_utf8_whatever_the_locale(tmp_path, monkeypatch):
    import codecs

    opened: list[dict[str, object]] = []
    real = os.fdopen

    def fdopen(fd, mode, **kwargs):
        opened.append({"mode": mode, **kwargs})
        return real(fd, mode, **kwargs)

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    with open_append(tmp_path / "skipped.jsonl", text=True):
        pass
    assert [o["mode"] for o in opened] == ["a"]
    assert codecs.lookup(str(opened[0]["encoding"])).name == "utf-8"


def test_an_own_file_is_opened_blocking_and_close_on_exec(tmp_path, umask_022):
    path = tmp_path / "run.lock"
    fd = open_own_file(path, os.O_RDWR | os.O_CREAT)
    try:
        assert os.get_blocking(fd) and not os.get_inheritable(fd)
        os.write(fd, b"123")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"123"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_open_own_file_never_truncates(tmp_path):
    path = tmp_path / "run.lock"
    path.write_bytes(b"4242")
    with pytest.raises(ValueError) as info:
        open_own_file(path, os.O_RDWR | os.O_TRUNC)
    assert str(info.value) == "open_own_file: O_TRUNC would cut whatever file the name stands for"
    assert path.read_bytes() == b"4242"


@pytest.mark.parametrize("flags", [APPEND, os.O_RDWR | os.O_CREAT, os.O_RDWR])
def test_a_link_is_refused_and_left_as_it_is(tmp_path, flags):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not yours")
    path = tmp_path / "detections.jsonl"
    path.symlink_to(target)
    before = _open_fds()
    assert _refused(open_own_file, path, flags) == f"{path} is a symbolic link{TAIL}"
    assert _open_fds() == before
    assert path.is_symlink() and target.read_bytes() == b"not yours"


def test_a_dangling_link_is_refused_and_nothing_is_created(tmp_path):
    path = tmp_path / "run.lock"
    path.symlink_to(tmp_path / "nowhere")
    assert _refused(open_own_file, path, os.O_RDWR | os.O_CREAT) == f"{path} is a symbolic link{TAIL}"
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("flags", [APPEND, os.O_RDWR | os.O_CREAT, os.O_RDONLY])
def test_a_folder_is_refused(tmp_path, flags):
    path = tmp_path / "history.jsonl"
    path.mkdir()
    before = _open_fds()
    assert _refused(open_own_file, path, flags) == f"{path} is not a regular file{TAIL}"
    assert _open_fds() == before


@pytest.mark.parametrize("flags", [APPEND, os.O_RDWR | os.O_CREAT])
def test_a_fifo_is_refused_without_hanging(tmp_path, flags):
    path = tmp_path / "skipped.jsonl"
    os.mkfifo(path)
    before = _open_fds()
    assert _refused(open_own_file, path, flags) == f"{path} is not a regular file{TAIL}"
    assert _open_fds() == before


@pytest.mark.parametrize("others", [1, 2])
def test_a_hard_linked_file_is_refused_naming_the_other_links(tmp_path, others):
    path = tmp_path / "detections.jsonl"
    path.write_bytes(b"")
    for i in range(others):
        os.link(path, tmp_path / f"other{i}")
    before = _open_fds()
    assert _refused(open_own_file, path, APPEND) == (
        f"{path} has {others} other hard link(s), which a write would change too{TAIL}"
    )
    assert _open_fds() == before
    assert (tmp_path / "other0").read_bytes() == b""


def test_another_open_failure_is_raised_as_it_is(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_own_file(tmp_path / "missing" / "run.lock", os.O_RDWR | os.O_CREAT)
    with pytest.raises(FileNotFoundError):
        open_own_file(tmp_path / "run.lock", os.O_RDWR)  # no O_CREAT: not created


def test_check_own_files_refuses_before_anything_is_written(tmp_path):
    check_own_files(tmp_path)  # none of them exists: fine
    (tmp_path / "history.jsonl").write_text("{}\n", encoding="utf-8")
    check_own_files(tmp_path)  # regular files: fine
    (tmp_path / "detections.jsonl").symlink_to(tmp_path / "history.jsonl")
    link = tmp_path / "detections.jsonl"
    assert _refused(check_own_files, tmp_path) == f"{link} is a symbolic link{TAIL}"
    link.unlink()
    (tmp_path / "skipped.jsonl").mkdir()
    assert _refused(check_own_files, tmp_path) == f"{tmp_path / 'skipped.jsonl'} is not a regular file{TAIL}"
    (tmp_path / "skipped.jsonl").rmdir()
    os.link(tmp_path / "history.jsonl", tmp_path / "copy")
    assert _refused(check_own_files, tmp_path) == (
        f"{tmp_path / 'history.jsonl'} has 1 other hard link(s), which a write would change too{TAIL}"
    )
    check_own_files(tmp_path, ("detections.jsonl",))  # only the names given are checked


# folders of its own


def test_own_folder_creates_the_folder_or_takes_an_existing_one(tmp_path):
    assert own_folder(tmp_path / "runs") == tmp_path / "runs"
    assert (tmp_path / "runs").is_dir()
    (tmp_path / "runs" / "kept").write_text("x", encoding="utf-8")
    assert own_folder(tmp_path / "runs") == tmp_path / "runs"
    assert (tmp_path / "runs" / "kept").read_text(encoding="utf-8") == "x"


def test_own_folder_refuses_a_link_and_a_file(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "runs").symlink_to(elsewhere)
    assert _refused(own_folder, tmp_path / "runs") == f"{tmp_path / 'runs'} is a symbolic link{TAIL}"
    (tmp_path / "pictures").write_text("x", encoding="utf-8")
    assert _refused(own_folder, tmp_path / "pictures") == f"{tmp_path / 'pictures'} is not a folder{TAIL}"
    assert list(elsewhere.iterdir()) == []
