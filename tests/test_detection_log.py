"""The detection log and its columnar store: the log is the truth, the store is rebuilt when stale."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ssd_eval.errors import OutputError
from ssd_eval.evaluation import detection_log
from ssd_eval.evaluation.detection_log import (
    DetectionColumns,
    DetectionLog,
    detections_from_line,
    detections_to_line,
    read_detection_log,
    store_path,
    truncate_torn_tail,
    write_results_json,
)
from ssd_eval.pipeline.decode import Detections

# Floats that a decimal round trip with fewer than 17 digits would change.
A = Detections(
    7,
    np.array([[0.1, 0.2, 10.000000000000002, 3.3], [1 / 3, 2 / 3, 5e-324, 1e300]]),
    np.array([0.9, 0.30000000000000004]),
    np.array([1, 90], dtype=np.int64),
)
B = Detections.empty(3)  # an image where nothing was detected still counts as done
C = Detections(12, np.array([[4.0, 5.0, 6.0, 7.0]]), np.array([0.5]), np.array([18], dtype=np.int64))


def _write(path: Path, *records: Detections) -> None:
    with DetectionLog(path) as det_log:
        for record in records:
            det_log.append(record)


def _same(got: Detections, want: Detections) -> None:
    assert got.image_id == want.image_id
    for name in ("boxes", "scores", "category_ids"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name  # bit-identical, not approximately equal


def _check(found: dict[int, Detections], *want: Detections) -> None:
    assert sorted(found) == sorted(d.image_id for d in want)
    for record in want:
        _same(found[record.image_id], record)


def _make_newer(path: Path) -> None:
    """Give `path` a modification time surely after the store's (coarse file-system clocks)."""
    stamp = path.stat().st_mtime_ns + 2_000_000_000
    os.utime(path, ns=(stamp, stamp))


def test_closing_the_log_writes_a_store_that_reads_back_bit_identical(tmp_path):
    path = tmp_path / "detections.jsonl"
    _write(path, A, B, C)
    assert store_path(path) == tmp_path / "detections.npz"
    assert store_path(path).is_file()
    assert len(path.read_text().splitlines()) == 3  # the log itself: one line per image
    _check(read_detection_log(path), A, B, C)


def _store_says_c(path: Path) -> None:
    """Give the store of `path` other content (image C) under the log's own size and digest: reading C
    back proves the store, not the log, was read."""
    with np.load(store_path(path)) as data:
        size, digest = data["log_size"].copy(), data["log_sha256"].copy()
    other = DetectionColumns.of([C])
    with store_path(path).open("wb") as handle:
        np.savez(
            handle,
            log_size=size,
            log_sha256=digest,
            image_ids=other.image_ids,
            counts=other.counts,
            boxes=other.boxes,
            scores=other.scores,
            category_ids=other.category_ids,
        )


def test_a_fresh_store_is_what_is_read(tmp_path):
    """Proof that the store, not the log, is read when it is up to date: give it other content."""
    path = tmp_path / "detections.jsonl"
    _write(path, A, B)
    _store_says_c(path)
    _check(read_detection_log(path), C)


def test_a_copied_run_folder_keeps_its_store(tmp_path):
    """`cp -r` gives the copies new modification times: the store is judged by the log's content."""
    path = tmp_path / "run" / "detections.jsonl"
    path.parent.mkdir()
    _write(path, A, B)
    _store_says_c(path)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(path.parent), str(copy)], check=True)
    _make_newer(copy / "detections.jsonl")  # surely newer than the store, whatever the clock's grain
    _check(read_detection_log(copy / "detections.jsonl"), C)


def test_a_store_of_another_content_is_not_trusted(tmp_path):
    """A store whose recorded digest is not the log's (same size) is rebuilt, even if it is newer."""
    path = tmp_path / "detections.jsonl"
    _write(path, C)
    text = path.read_text()
    with np.load(store_path(path)) as data:
        columns = {name: data[name].copy() for name in data.files}
    path.write_text(text.replace('"image_id":12', '"image_id":13'))  # same size, other content
    os.utime(path, ns=(1, 1))  # older than the store
    with store_path(path).open("wb") as handle:
        np.savez(handle, **columns)
    assert list(read_detection_log(path)) == [13]


def test_a_missing_store_is_rebuilt_from_the_log(tmp_path):
    path = tmp_path / "detections.jsonl"
    _write(path, A, C)
    store_path(path).unlink()
    _check(read_detection_log(path), A, C)
    assert store_path(path).is_file()


def test_a_log_newer_than_its_store_is_read_again_and_the_store_rebuilt(tmp_path):
    path = tmp_path / "detections.jsonl"
    _write(path, A)
    # Another process (a resumed run killed before it closed the log) appended an image.
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"image_id":12,"boxes":[4.0,5.0,6.0,7.0],"scores":[0.5],"category_ids":[18]}\n')
    _make_newer(path)
    _check(read_detection_log(path), A, C)
    with np.load(store_path(path)) as data:  # the rebuilt store now mirrors the log as it is
        assert int(data["log_size"]) == len(path.read_bytes())
        assert bytes(data["log_sha256"]) == hashlib.sha256(path.read_bytes()).digest()
        assert data["image_ids"].tolist() == [7, 12]
    _check(read_detection_log(path), A, C)


def test_a_log_rewritten_to_the_same_size_is_not_hidden_by_the_store(tmp_path):
    path = tmp_path / "detections.jsonl"
    _write(path, C)
    text = path.read_text()
    path.write_text(text.replace('"image_id":12', '"image_id":13'))  # same size, other content
    _make_newer(path)
    assert list(read_detection_log(path)) == [13]


def test_a_torn_last_line_is_dropped_and_resuming_continues_on_a_clean_line(tmp_path, caplog):
    path = tmp_path / "detections.jsonl"
    _write(path, A, B)
    store_path(path).unlink()
    with path.open("a", encoding="utf-8") as handle:  # what SIGKILL mid-write leaves
        handle.write('{"image_id":12,"boxes":[4.0,5.0')
    with caplog.at_level(logging.WARNING):
        found = read_detection_log(path)
    _check(found, A, B)
    assert "torn last line" in caplog.text
    _write(path, C)  # what --resume does: append after the torn line is cut
    assert len(path.read_text().splitlines()) == 3
    store_path(path).unlink()
    _check(read_detection_log(path), A, B, C)


def test_a_damaged_line_before_the_end_is_an_error_naming_it(tmp_path):
    path = tmp_path / "detections.jsonl"
    _write(path, A, B, C)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "garbage\n" + lines[2])
    _make_newer(path)
    with pytest.raises(OutputError, match=r"detections\.jsonl: line 2 is not a detections record"):
        read_detection_log(path)


def test_a_damaged_store_is_rebuilt(tmp_path, caplog):
    path = tmp_path / "detections.jsonl"
    _write(path, A, C)
    store_path(path).write_bytes(b"PK\x03\x04 not really a zip")
    with caplog.at_level(logging.WARNING):
        _check(read_detection_log(path), A, C)
    assert "damaged" in caplog.text
    with np.load(store_path(path)) as data:
        assert data["image_ids"].tolist() == [7, 12]


def test_an_interrupted_writer_leaves_no_store_and_the_log_is_read(tmp_path):
    path = tmp_path / "detections.jsonl"
    with pytest.raises(KeyboardInterrupt), DetectionLog(path) as det_log:
        det_log.append(A)
        det_log.append(C)
        raise KeyboardInterrupt
    assert not store_path(path).exists()
    _check(read_detection_log(path), A, C)


def test_resuming_takes_the_earlier_records_from_an_up_to_date_store(tmp_path):
    """A resumed run does not parse the log again when its store mirrors it: the store says C."""
    path = tmp_path / "detections.jsonl"
    _write(path, A, B)
    _store_says_c(path)
    _write(path, B)
    with np.load(store_path(path)) as data:
        assert data["image_ids"].tolist() == [12, 3]  # C from the store, then the B appended


def test_resuming_a_log_extends_its_store(tmp_path):
    path = tmp_path / "detections.jsonl"
    _write(path, A)
    _write(path, B, C)
    with np.load(store_path(path)) as data:
        assert data["image_ids"].tolist() == [7, 3, 12]
        assert data["counts"].tolist() == [2, 0, 1]
    _check(read_detection_log(path), A, B, C)


def test_a_later_record_of_an_image_wins(tmp_path):
    path = tmp_path / "detections.jsonl"
    again = Detections(7, np.array([[1.0, 1.0, 2.0, 2.0]]), np.array([0.25]), np.array([3], dtype=np.int64))
    _write(path, A, C, again)
    _check(read_detection_log(path), again, C)
    store_path(path).unlink()
    _check(read_detection_log(path), again, C)


def test_no_log_means_no_detections(tmp_path):
    assert read_detection_log(tmp_path / "detections.jsonl") == {}
    assert not store_path(tmp_path / "detections.jsonl").exists()


@pytest.mark.parametrize(
    ("counts", "boxes", "categories"),
    [
        ([1, 1], (3, 4), 3),  # counts sum to 2, 3 detections
        ([4, -1], (3, 4), 3),  # a negative count
        ([1, 2], (3, 5), 3),  # boxes are not x, y, w, h
        ([1, 2], (3, 4), 2),  # a category missing
        ([3], (3, 4), 3),  # one count for two records
    ],
)
def test_columns_refuse_inconsistent_shapes(counts, boxes, categories):
    with pytest.raises(ValueError, match="inconsistent detection columns"):
        DetectionColumns(
            image_ids=np.array([1, 2]),
            counts=np.array(counts),
            boxes=np.zeros(boxes),
            scores=np.zeros(3),
            category_ids=np.zeros(categories, dtype=np.int64),
        )
    DetectionColumns(  # the consistent twin is accepted
        image_ids=np.array([1, 2]),
        counts=np.array([1, 2]),
        boxes=np.zeros((3, 4)),
        scores=np.zeros(3),
        category_ids=np.zeros(3, dtype=np.int64),
    )


@pytest.mark.parametrize("column", ["image_ids", "counts", "boxes", "scores", "category_ids"])
def test_columns_refuse_another_dtype(column):
    # A float32 box or an int32 id would not be what the log's text reads back as.
    good = {
        "image_ids": np.array([1, 2], dtype=np.int64),
        "counts": np.array([1, 2], dtype=np.int64),
        "boxes": np.zeros((3, 4), dtype=np.float64),
        "scores": np.zeros(3, dtype=np.float64),
        "category_ids": np.zeros(3, dtype=np.int64),
    }
    DetectionColumns(**good)
    other = np.int32 if good[column].dtype == np.int64 else np.float32
    bad = {**good, column: good[column].astype(other)}
    with pytest.raises(ValueError) as info:
        DetectionColumns(**bad)
    dtypes = ", ".join(str(a.dtype) for a in bad.values())
    assert str(info.value) == (
        f"detection columns of dtypes {dtypes}; expected int64, int64, float64, float64, int64 "
        "(image_ids, counts, boxes, scores, category_ids)"
    )


def test_a_store_of_other_dtypes_is_rebuilt_bit_identical(tmp_path, caplog):
    """A store holding float32 boxes (another version, or by hand) is not cast: it is rebuilt."""
    path = tmp_path / "detections.jsonl"
    _write(path, A, C)
    with np.load(store_path(path)) as data:
        arrays = {name: data[name].copy() for name in data.files}
    with np.errstate(over="ignore"):  # A's 1e300 becomes inf in float32: a cast would lose it
        arrays["boxes"] = arrays["boxes"].astype(np.float32)
    with store_path(path).open("wb") as handle:
        np.savez(handle, **arrays)
    with caplog.at_level(logging.WARNING):
        _check(read_detection_log(path), A, C)
    assert "damaged" in caplog.text
    with np.load(store_path(path)) as data:
        assert data["boxes"].dtype == np.float64  # rewritten from the log


def test_an_unreadable_log_is_an_output_error_naming_it(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "detections.jsonl"
    _write(path, A)
    store_path(path).unlink()

    def fails(self: Path) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(Path, "read_bytes", fails)
    with pytest.raises(OutputError) as info:
        read_detection_log(path)
    assert str(info.value) == f"cannot read {path}: Input/output error"


def test_a_log_that_grows_while_it_is_read_gets_a_store_of_what_was_read(tmp_path, monkeypatch):
    """A live run appending while `score` reads: the store records the content it was made from, so the
    next reader, seeing the grown log, does not trust it."""
    path = tmp_path / "detections.jsonl"
    _write(path, A)
    store_path(path).unlink()
    read_bytes = Path.read_bytes

    def read_then_append(self: Path) -> bytes:
        data = read_bytes(self)
        if self == path:
            with path.open("a", encoding="utf-8") as handle:
                handle.write(detections_to_line(C) + "\n")
        return data

    monkeypatch.setattr(Path, "read_bytes", read_then_append)
    _check(read_detection_log(path), A)  # what was there when reading began
    with np.load(store_path(path)) as data:
        assert data["image_ids"].tolist() == [7]  # what was read
        assert int(data["log_size"]) == len(detections_to_line(A)) + 1
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    _check(read_detection_log(path), A, C)
    assert store_path(path).is_file()


def test_the_store_holds_plain_arrays_only(tmp_path):
    path = tmp_path / "detections.jsonl"
    _write(path, A, B)
    with np.load(store_path(path), allow_pickle=False) as data:
        assert sorted(data.files) == [
            "boxes",
            "category_ids",
            "counts",
            "image_ids",
            "log_sha256",
            "log_size",
            "scores",
        ]
        assert data["boxes"].dtype == np.float64 and data["category_ids"].dtype == np.int64
        assert data["image_ids"].tolist() == [7, 3] and data["counts"].tolist() == [2, 0]
        assert data["boxes"].tobytes() == A.boxes.tobytes()
        assert data["scores"].tobytes() == A.scores.tobytes()
        assert data["category_ids"].tolist() == [1, 90]


# Byte-for-byte expectations of the log format and the results file (issue 11).


def _dets(image_id: int, n: int) -> Detections:
    boxes = np.array([[1.5, 2.0, 3.25, 4.0], [10.0, 20.0, 30.0, 40.5]])[:n]
    return Detections(image_id, boxes, np.array([0.875, 0.125])[:n], np.array([18, 90])[:n])


def test_a_line_is_compact_json():
    assert detections_to_line(_dets(7, 2)) == (
        '{"image_id":7,"boxes":[1.5,2.0,3.25,4.0,10.0,20.0,30.0,40.5],'
        '"scores":[0.875,0.125],"category_ids":[18,90]}'
    )
    empty = '{"image_id":3,"boxes":[],"scores":[],"category_ids":[]}'
    assert detections_to_line(Detections.empty(3)) == empty


def test_a_line_reads_back_with_the_right_dtypes():
    # Integers in the JSON (a hand-written or foreign log) still give float64 boxes and scores.
    dets = detections_from_line(
        '{"image_id":"5","boxes":[1,2,3,4,5,6,7,8],"scores":[1,0],"category_ids":[1,3]}'
    )
    assert dets.image_id == 5
    assert dets.boxes.dtype == np.float64 and dets.boxes.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert dets.scores.dtype == np.float64 and dets.scores.tolist() == [1.0, 0.0]
    assert dets.category_ids.dtype == np.int64 and dets.category_ids.tolist() == [1, 3]
    empty = detections_from_line('{"image_id":9,"boxes":[],"scores":[],"category_ids":[]}')
    assert empty.boxes.shape == (0, 4) and empty.boxes.dtype == np.float64
    assert empty.category_ids.dtype == np.int64 and empty.scores.dtype == np.float64


def test_log_appends_one_line_per_image_and_closes(tmp_path):
    path = tmp_path / "d.jsonl"
    log = DetectionLog(path)
    with pytest.raises(RuntimeError, match=r"^DetectionLog.append outside its `with` block$"):
        log.append(_dets(1, 1))
    with log:
        log.append(_dets(1, 1))
        log.append(_dets(2, 0))
        # flushed after every image: readable while the run goes on
        assert path.read_text().count("\n") == 2
    with pytest.raises(RuntimeError, match="outside its `with` block"):
        log.append(_dets(3, 1))  # closed on exit
    with DetectionLog(path) as again:  # appends, never truncates
        again.append(_dets(3, 2))
    assert path.read_text() == (
        '{"image_id":1,"boxes":[1.5,2.0,3.25,4.0],"scores":[0.875],"category_ids":[18]}\n'
        '{"image_id":2,"boxes":[],"scores":[],"category_ids":[]}\n'
        '{"image_id":3,"boxes":[1.5,2.0,3.25,4.0,10.0,20.0,30.0,40.5],"scores":[0.875,0.125],'
        '"category_ids":[18,90]}\n'
    )
    assert sorted(read_detection_log(path)) == [1, 2, 3]


def test_unwritable_log_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match=r"^cannot write .*nodir.d\.jsonl: No such file or directory$"):
        DetectionLog(tmp_path / "nodir" / "d.jsonl").__enter__()


def test_fsync_at_most_every_five_seconds(tmp_path, monkeypatch):
    clock = [100.0]
    synced: list[int] = []
    monkeypatch.setattr(detection_log.time, "monotonic", lambda: clock[0])
    # Only the log's own syncs count (the store written on close is synced too): told by the fd's file.
    monkeypatch.setattr(
        detection_log.os,
        "fsync",
        lambda fd: synced.append(fd) if os.readlink(f"/proc/self/fd/{fd}").endswith("d.jsonl") else None,
    )
    with DetectionLog(tmp_path / "d.jsonl") as log:
        for now, expected in ((104.9, 0), (105.0, 0), (105.1, 1), (110.0, 1), (110.2, 2)):
            clock[0] = now
            log.append(_dets(1, 1))
            assert len(synced) == expected, now
        assert all(isinstance(fd, int) and fd >= 0 for fd in synced)
    assert len(synced) == 3  # and once on close


def test_read_back_blank_lines_torn_and_damaged(tmp_path, caplog):
    good = [detections_to_line(_dets(i, 1)) for i in (1, 2, 3)]
    path = tmp_path / "a.jsonl"
    path.write_text(f"{good[0]}\n\n{good[1]}\n{good[2]}\n")  # a blank line does not end the log
    assert sorted(read_detection_log(path)) == [1, 2, 3]
    path = tmp_path / "b.jsonl"
    path.write_text(f"{good[0]}\n{good[1]}\n{good[2][:20]}")  # killed mid-write
    with caplog.at_level(logging.WARNING):
        assert sorted(read_detection_log(path)) == [1, 2]
    assert "dropping a torn last line" in caplog.text
    path = tmp_path / "c.jsonl"
    path.write_text(f"{good[0]}\n{good[1]}\n{{broken\n")  # a damaged last line, newline-terminated
    assert sorted(read_detection_log(path)) == [1, 2]
    path = tmp_path / "d.jsonl"
    path.write_text(f"{good[0]}\n{{broken\n{good[2]}\n")  # damaged in the middle: not a torn tail
    damaged = r"d\.jsonl: line 2 is not a detections record \(.*\); the file is damaged: restore it"
    with pytest.raises(OutputError, match=damaged):
        read_detection_log(path)
    path = tmp_path / "e.jsonl"
    path.write_text(f"{{broken\n{good[1]}\n{good[2]}\n")
    with pytest.raises(OutputError, match=r": line 1 is not"):
        read_detection_log(path)


def test_truncate_torn_tail(tmp_path):
    path = tmp_path / "d.jsonl"
    truncate_torn_tail(path)  # no file: nothing to do
    assert not path.exists()
    path.write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    truncate_torn_tail(path)
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n'
    truncate_torn_tail(path)  # a clean file stays as it is
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n'
    path.write_bytes(b'{"c":')
    truncate_torn_tail(path)
    assert path.read_bytes() == b""


def test_results_file_is_the_coco_results_list(tmp_path):
    path = tmp_path / "detections.json"
    count = write_results_json(path, [_dets(4, 2), _dets(5, 0), _dets(6, 1)])
    assert count == 3
    assert path.read_text() == (
        "[\n"
        '{"image_id":4,"category_id":18,"bbox":[1.5,2.0,3.25,4.0],"score":0.875},\n'
        '{"image_id":4,"category_id":90,"bbox":[10.0,20.0,30.0,40.5],"score":0.125},\n'
        '{"image_id":6,"category_id":18,"bbox":[1.5,2.0,3.25,4.0],"score":0.875}\n'
        "]\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["detections.json"]  # no temporary file left
    assert write_results_json(path, []) == 0
    assert json.loads(path.read_text()) == []


def test_the_results_file_is_the_json_of_every_record_one_a_line(tmp_path):
    odd = Detections(
        5, np.array([[np.inf, 1.0, 2.0, 3.0]]), np.array([0.5]), np.array([2], dtype=np.int64)
    )  # json.dumps writes Infinity; the file says so too
    path = tmp_path / "detections.json"
    assert write_results_json(path, [A, B, C, odd]) == 4
    records = [r for d in (A, C, odd) for r in d.to_coco_json()]
    expected = "[\n" + ",\n".join(json.dumps(r, separators=(",", ":")) for r in records) + "\n]\n"
    assert path.read_text() == expected
    back = json.loads(path.read_text())
    assert back[1]["bbox"][2] == 5e-324 and back[0]["bbox"][2] == 10.000000000000002  # exact floats
    assert write_results_json(path, [B]) == 0
    assert json.loads(path.read_text()) == []


def test_a_full_disk_keeps_whole_lines_and_names_resume(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "d.jsonl"
    real_write = os.write
    calls = [0]

    def write(fd, data):  # the third image: half a line, then the disk is full
        calls[0] += 1
        if calls[0] == 3:
            return real_write(fd, bytes(data[:10]))
        if calls[0] == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(detection_log.os, "write", write)
    with pytest.raises(OutputError) as info, DetectionLog(path) as det_log:
        det_log.append(_dets(1, 1))
        det_log.append(_dets(2, 2))  # lines of different lengths: the cut is at their sum
        det_log.append(_dets(3, 1))
    assert str(info.value) == (
        f"cannot write {path}: No space left on device (the 2 images before are kept); "
        f"free some space, then continue with --resume {tmp_path}"
    )
    whole = detections_to_line(_dets(1, 1)) + "\n" + detections_to_line(_dets(2, 2)) + "\n"
    assert path.read_text() == whole  # the half line is cut


def test_a_write_that_makes_no_progress_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(detection_log.os, "write", lambda fd, data: 0)
    no_progress = r"d\.jsonl: the write made no progress \(the 0 images before"
    with pytest.raises(OutputError, match=no_progress), DetectionLog(tmp_path / "d.jsonl") as det_log:
        det_log.append(_dets(1, 1))


def test_a_failing_fsync_on_close_is_an_error_naming_the_images_kept(tmp_path, monkeypatch):
    import errno

    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    path = tmp_path / "d.jsonl"
    kept = r"Input/output error \(the 2 images before are kept\)"
    with pytest.raises(OutputError, match=kept), DetectionLog(path) as det_log:
        det_log.append(_dets(1, 1))
        det_log.append(_dets(2, 0))
        monkeypatch.setattr(detection_log.os, "fsync", fsync)
    assert not store_path(path).exists()  # no store for a log that may not be on disk


# Each refusal of a log line, whole (a hand-written or damaged log; docs/checks.md).

ID_RULE = "image_id must be an integer with |id| <= 9007199254740991 (2**53 - 1), got "
NUMBERS = "boxes and scores must be lists of numbers (four a box)"
CATEGORIES = "category_ids must be a list of integers with |id| <= 9007199254740991"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[]", "expected an object"),
        ('"image_id"', "expected an object"),
        ('{"boxes":[],"scores":[],"category_ids":[]}', ID_RULE + "None"),
        ('{"image_id":7.0,"boxes":[],"scores":[],"category_ids":[]}', ID_RULE + "7.0"),
        (
            '{"image_id":9007199254740992,"boxes":[],"scores":[],"category_ids":[]}',
            ID_RULE + "9007199254740992",
        ),
        # the value shown is cut to 40 characters of its repr: the quote and 39 x
        (
            '{"image_id":"' + "x" * 60 + '","boxes":[],"scores":[],"category_ids":[]}',
            ID_RULE + "'" + "x" * 39,
        ),
        ('{"image_id":1,"boxes":[1,2,3],"scores":[],"category_ids":[]}', NUMBERS),
        ('{"image_id":1,"scores":[],"category_ids":[]}', NUMBERS),
        ('{"image_id":1,"boxes":"abcd","scores":[0.5],"category_ids":[1]}', NUMBERS),
        ('{"image_id":1,"boxes":[true,0,1,1],"scores":[0.5],"category_ids":[1]}', NUMBERS),
        ('{"image_id":1,"boxes":[0,0,1,1],"scores":["0.5"],"category_ids":[1]}', NUMBERS),
        ('{"image_id":1,"boxes":[0,0,1,1],"scores":0.5,"category_ids":[1]}', NUMBERS),
        ('{"image_id":1,"boxes":[0,0,1,1],"scores":[0.5],"category_ids":[1.0]}', CATEGORIES),
        ('{"image_id":1,"boxes":[0,0,1,1],"scores":[0.5],"category_ids":[9007199254740992]}', CATEGORIES),
        ('{"image_id":1,"boxes":[0,0,1,1],"scores":[0.5],"category_ids":[-9007199254740992]}', CATEGORIES),
        ('{"image_id":1,"boxes":[0,0,1,1],"scores":[0.5]}', CATEGORIES),
    ],
)
def test_a_line_that_is_not_a_record_is_refused_saying_why(line, message):
    with pytest.raises(ValueError) as info:
        detections_from_line(line)
    assert str(info.value) == message


def test_ids_at_the_limit_read_back_exactly():
    dets = detections_from_line(
        '{"image_id":-9007199254740991,"boxes":[0,0,1,1,2,2,3,3],"scores":[0.5,0.25],'
        '"category_ids":[9007199254740991,-9007199254740991]}'
    )
    assert dets.image_id == -(2**53 - 1)
    assert dets.category_ids.tolist() == [2**53 - 1, -(2**53 - 1)]
    assert dets.boxes.tolist() == [[0, 0, 1, 1], [2, 2, 3, 3]]


def test_a_non_finite_output_is_logged_and_read_back_as_it_came(tmp_path):
    odd = Detections(
        4,
        np.array([[np.inf, 1.0, 2.0, 3.0]]),
        np.array([np.nan]),
        np.array([1], dtype=np.int64),
    )
    line = detections_to_line(odd)
    assert line == '{"image_id":4,"boxes":[Infinity,1.0,2.0,3.0],"scores":[NaN],"category_ids":[1]}'
    back = detections_from_line(line)
    assert back.boxes.tolist()[0][0] == np.inf and np.isnan(back.scores[0])
    path = tmp_path / "detections.jsonl"
    _write(path, odd, C)
    store_path(path).unlink()
    found = read_detection_log(path)  # parsed from the log
    assert sorted(found) == [4, 12] and np.isnan(found[4].scores[0])


def test_a_damaged_line_is_named_with_its_problem_in_one_line(tmp_path):
    path = tmp_path / "detections.jsonl"
    path.write_text(
        detections_to_line(C)
        + "\n"
        + '{"image_id":1,"boxes":[1,2,3],"scores":[],"category_ids":[]}\n'
        + detections_to_line(A)
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(OutputError) as info:
        read_detection_log(path)
    assert str(info.value) == (
        f"{path}: line 2 is not a detections record (boxes and scores must be lists of numbers (four a "
        "box)); the file is damaged: restore it from a copy, or delete the run folder and run again"
    )


def test_truncate_torn_tail_names_a_log_it_cannot_open(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "detections.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":')

    def denied(path, flags):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(detection_log, "open_own_file", denied)
    with pytest.raises(OutputError) as info:
        truncate_torn_tail(path)
    assert str(info.value) == f"cannot write {path}: Permission denied"
    assert path.read_bytes() == b'{"a":1}\n{"b":'


def test_truncate_torn_tail_never_cuts_through_a_link(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b'{"a":1}\n{"b":')
    path = tmp_path / "detections.jsonl"
    path.symlink_to(target)
    with pytest.raises(OutputError, match=r"detections\.jsonl is a symbolic link: ssd-eval writes only"):
        truncate_torn_tail(path)
    assert target.read_bytes() == b'{"a":1}\n{"b":'


def test_a_store_is_never_unpickled(tmp_path, caplog):
    """A store planted on shared storage must not run code when read: object arrays are refused."""
    path = tmp_path / "detections.jsonl"
    _write(path, A, C)
    with np.load(store_path(path)) as data:
        arrays = {name: data[name].copy() for name in data.files}
    marker = tmp_path / "code-ran"

    class Planted:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    arrays["log_size"] = np.array([Planted()], dtype=object)
    with store_path(path).open("wb") as handle:
        np.savez(handle, **arrays)
    with caplog.at_level(logging.INFO):
        _check(read_detection_log(path), A, C)
    assert not marker.exists()
    assert caplog.records[0].getMessage() == (
        f"{store_path(path)} is damaged (Object arrays cannot be loaded when allow_pickle=False); "
        "rebuilding it from the log"
    )


def _messages(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == detection_log.log.name]


def test_why_a_store_is_rebuilt_is_logged_in_one_line(tmp_path, caplog):
    path = tmp_path / "detections.jsonl"
    store = store_path(path)
    _write(path, A, C)
    with np.load(store) as data:
        arrays = {name: data[name].copy() for name in data.files}
    older = {name: value for name, value in arrays.items() if name not in ("log_size", "log_sha256")}
    with store.open("wb") as handle:
        np.savez(handle, **older)
    with caplog.at_level(logging.INFO):
        _check(read_detection_log(path), A, C)
    assert _messages(caplog) == [
        ("INFO", f"{store} was written by an older ssd_eval; rebuilding it from the log")
    ]

    caplog.clear()
    with path.open("a", encoding="utf-8") as handle:
        handle.write(detections_to_line(B) + "\n")
    with caplog.at_level(logging.INFO):
        _check(read_detection_log(path), A, B, C)
    assert _messages(caplog) == [
        ("INFO", f"{store} does not mirror its log (the log changed); rebuilding it")
    ]

    caplog.clear()
    with np.errstate(over="ignore"):  # A's 1e300 is inf in float32
        arrays = {**arrays, "boxes": arrays["boxes"].astype(np.float32)}
    with np.load(store) as data:  # the current state, float32 boxes
        arrays["log_size"], arrays["log_sha256"] = data["log_size"].copy(), data["log_sha256"].copy()
    with store.open("wb") as handle:
        np.savez(handle, **{**arrays, "image_ids": np.array([7, 3, 12]), "counts": np.array([2, 0, 1])})
    with caplog.at_level(logging.INFO):
        _check(read_detection_log(path), A, B, C)
    assert _messages(caplog) == [
        (
            "WARNING",
            f"{store} is damaged (detection columns of dtypes int64, int64, float32, float64, int64; "
            "expected int64, int64, float64, float64, int64 (image_ids, counts, boxes, scores, "
            "category_ids)); rebuilding it from the log",
        )
    ]

    caplog.clear()
    store.write_bytes(b"")
    with caplog.at_level(logging.INFO):
        _check(read_detection_log(path), A, B, C)
    assert _messages(caplog) == [
        ("WARNING", f"{store} is damaged (No data left in file); rebuilding it from the log")
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _check(read_detection_log(path), A, B, C)  # up to date again: nothing to say
    assert _messages(caplog) == []


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (OSError(30, "Read-only file system"), "Read-only file system"),
        (OSError("quota exceeded"), "quota exceeded"),
    ],
)
def test_a_store_that_cannot_be_written_is_no_error(tmp_path, monkeypatch, caplog, error, shown):
    path = tmp_path / "detections.jsonl"
    _write(path, A, C)
    store_path(path).unlink()

    def refuse(path, **kwargs):
        raise error

    monkeypatch.setattr(detection_log, "atomic_writer", refuse)
    with caplog.at_level(logging.INFO):
        _check(read_detection_log(path), A, C)
    assert _messages(caplog) == [
        ("INFO", f"cannot write {store_path(path)} ({shown}): the log is parsed again next time")
    ]
    assert not store_path(path).exists()


def test_a_torn_last_line_is_logged_in_one_line(tmp_path, caplog):
    path = tmp_path / "detections.jsonl"
    path.write_text(detections_to_line(C) + '\n{"image_id":3,"bo', encoding="utf-8")
    with caplog.at_level(logging.INFO):
        _check(read_detection_log(path), C)
    assert _messages(caplog)[0] == (
        "WARNING",
        f"{path}: dropping a torn last line (the run was interrupted mid-write)",
    )


def test_a_whole_last_line_that_is_not_a_record_is_damage_not_a_torn_line(tmp_path):
    path = tmp_path / "detections.jsonl"
    path.write_text(
        detections_to_line(C) + '\n{"image_id":1.5,"boxes":[],"scores":[],"category_ids":[]}\n',
        encoding="utf-8",
    )
    with pytest.raises(OutputError) as info:
        read_detection_log(path)
    assert str(info.value) == (
        f"{path}: line 2 is not a detections record ({ID_RULE}1.5); the file is damaged: restore it from a "
        "copy, or delete the run folder and run again"
    )


def test_a_damaged_lines_problem_is_cut_to_120_characters(tmp_path):
    path = tmp_path / "detections.jsonl"
    path.write_text(
        '{"image_id":'
        + "1" * 5000
        + ',"boxes":[],"scores":[],"category_ids":[]}\n'
        + detections_to_line(C)
        + "\n",
        encoding="utf-8",
    )
    problem = (
        "Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits; use "
        "sys.set_int_max_str_digits() to increase the limit"
    )[:120]
    with pytest.raises(OutputError) as info:
        read_detection_log(path)
    assert str(info.value) == (
        f"{path}: line 1 is not a detections record ({problem}); the file is damaged: restore it from a "
        "copy, or delete the run folder and run again"
    )


def test_a_log_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "detections.jsonl"
    path.write_bytes(
        b'{"image_id":3,"boxes":[],"scores":[],"category_ids":[]}\n\xff\n'
    )  # byte 56: 55 + newline
    with pytest.raises(OutputError) as info:
        read_detection_log(path)
    assert str(info.value) == (
        f"{path} is not UTF-8 text (byte 56); it is written by `ssd-eval run`: restore it from a copy, or "
        "delete the run folder and run again"
    )


def test_the_log_state_reads_in_blocks_of_one_mib(tmp_path, monkeypatch):
    data = bytes(range(256)) * (10 * 1024 + 1)  # 2.5 MiB and 256 bytes
    path = tmp_path / "detections.jsonl"
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
    state = detection_log.LogState.of_file(path)
    assert state == detection_log.LogState(len(data), hashlib.sha256(data).digest())
    assert sizes == [1 << 20] * 4


def test_a_damaged_log_refuses_the_writer_and_closes_the_file(tmp_path):
    path = tmp_path / "detections.jsonl"
    path.write_text("garbage\n" + detections_to_line(C) + "\n", encoding="utf-8")
    before = set(os.listdir("/proc/self/fd"))
    det_log = DetectionLog(path)
    with pytest.raises(OutputError, match=r"detections\.jsonl: line 1 is not a detections record"):
        det_log.__enter__()
    assert set(os.listdir("/proc/self/fd")) == before
    with pytest.raises(RuntimeError, match=r"^DetectionLog.append outside its `with` block$"):
        det_log.append(C)
    det_log.__exit__(None, None, None)  # nothing to close: no error
    assert not store_path(path).exists()


def test_a_failing_fsync_while_a_run_is_interrupted_keeps_the_interrupt(tmp_path, monkeypatch):
    import errno

    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    path = tmp_path / "d.jsonl"
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(KeyboardInterrupt), DetectionLog(path) as det_log:
        det_log.append(_dets(1, 1))
        monkeypatch.setattr(detection_log.os, "fsync", fsync)
        raise KeyboardInterrupt
    assert set(os.listdir("/proc/self/fd")) == before  # the log is closed all the same
    assert not store_path(path).exists()


def test_an_interrupt_mid_write_cuts_the_half_line_and_is_raised(tmp_path, monkeypatch):
    path = tmp_path / "d.jsonl"
    real_write = os.write
    calls = [0]

    def write(fd, data):
        calls[0] += 1
        if calls[0] == 2:
            real_write(fd, bytes(data[:10]))
            raise KeyboardInterrupt
        return real_write(fd, data)

    monkeypatch.setattr(detection_log.os, "write", write)
    with pytest.raises(KeyboardInterrupt), DetectionLog(path) as det_log:
        det_log.append(_dets(1, 1))
        det_log.append(_dets(2, 2))
    assert path.read_text(encoding="utf-8") == detections_to_line(_dets(1, 1)) + "\n"


def test_when_cutting_the_half_line_fails_too_the_write_error_is_raised(tmp_path, monkeypatch):
    """A file system that fails twice: the write, then the cut; the write's error is the one told."""
    import errno

    path = tmp_path / "d.jsonl"
    _write(path, _dets(1, 1), _dets(2, 0))  # two images before this run

    def write(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def ftruncate(fd, size):
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OutputError) as info, DetectionLog(path) as det_log:
        det_log.append(_dets(3, 1))
        monkeypatch.setattr(detection_log.os, "write", write)
        monkeypatch.setattr(detection_log.os, "ftruncate", ftruncate)
        det_log.append(_dets(4, 1))
    assert str(info.value) == (
        f"cannot write {path}: No space left on device (the 3 images before are kept); "
        f"free some space, then continue with --resume {tmp_path}"
    )


def test_a_log_reopened_without_appending_keeps_its_store(tmp_path):
    path = tmp_path / "detections.jsonl"
    _write(path, A, C)
    _write(path)  # resumed, nothing left to do
    with np.load(store_path(path)) as data:
        assert data["image_ids"].tolist() == [7, 12] and data["counts"].tolist() == [2, 1]
    _write(tmp_path / "empty.jsonl")
    with np.load(tmp_path / "empty.npz") as data:
        assert data["image_ids"].tolist() == [] and data["boxes"].shape == (0, 4)
        assert int(data["log_size"]) == 0


def test_inconsistent_columns_are_told_with_every_shape():
    with pytest.raises(ValueError) as info:
        DetectionColumns(
            image_ids=np.array([1, 2]),
            counts=np.array([1, 1]),
            boxes=np.zeros((3, 4)),
            scores=np.zeros(3),
            category_ids=np.zeros(2, dtype=np.int64),
        )
    assert str(info.value) == (
        "inconsistent detection columns: 2 records, counts (2,) summing to 2, boxes (3, 4), scores (3,), "
        "category_ids (2,)"
    )
