"""The run folder on disk (engine/run_folder.py): which folders a command may create or replace, its lock,
and each of its files read back, with every refusal line written out whole.

A run folder is read back from anywhere (another machine, an older ssd_eval, a hand edit): a damaged
file is one line naming the file, what is wrong and what to do (docs/operations.md).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
from pathlib import Path

import pytest
import yaml
from conftest import TINY_IMAGES

from ssd_eval.config.run import ExpectedConfig, GateConfig, OutputConfig, RunConfig
from ssd_eval.data.dataset import Shard, open_ground_truth
from ssd_eval.engine import run_folder
from ssd_eval.engine.run_folder import (
    BUSY_OTHER,
    MERGE_ADVICE,
    REMAKE_RUN,
    RunInfo,
    append_history,
    append_skipped,
    check_apart,
    check_not_link,
    check_run_folder_free,
    check_writable,
    derived_identity,
    folder_rules,
    gate_baseline,
    is_run_folder,
    load_run_config,
    locked_run_folder,
    parse_shard,
    prepare_run_folder,
    read_history,
    read_identity,
    read_run_info,
    read_skipped,
    run_baseline,
    write_gate_baseline,
    write_identity,
    write_run_info,
    writing,
)
from ssd_eval.errors import ConfigError, OutputError
from ssd_eval.reports.baseline import Baseline, baseline_digest, write_baseline
from ssd_eval.reports.results import ModelInfo, Provenance, SkippedImage, StageTiming

HISTORY_ADVICE = "it is written by ssd-eval: remove that line (the run's timings then leave out its part)"
IDENTITY_ADVICE = (
    "it is written once by `ssd-eval run` before the first image and never changed: restore it from a copy, "
    "or rerun the run"
)


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(OutputError) as info:
        call(*args, **kwargs)
    return str(info.value)


# --- folders a command creates ---------------------------------------------------------------------


def test_a_folder_that_can_be_created_passes(tmp_path):
    check_writable(tmp_path / "a" / "b" / "c")  # missing parents are made later
    check_writable(tmp_path)


def test_a_folder_under_a_file_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("x")
    folder = tmp_path / "file" / "a" / "b"
    assert refused(check_writable, folder) == (
        f"output folder {folder} cannot be created: {tmp_path / 'file'} is not a writable folder; "
        "set output.dir in the config or --output"
    )


def test_a_folder_under_a_read_only_one_cannot_be_created(tmp_path, monkeypatch):
    """The nearest existing folder must be writable and searchable (root passes os.access anyway: the
    answer of a non-root user is stood in for)."""
    asked = []

    def read_only(path, mode):
        asked.append((Path(path), mode))
        return not mode & os.W_OK

    monkeypatch.setattr(run_folder.os, "access", read_only)
    folder = tmp_path / "new" / "run"
    assert refused(check_writable, folder) == (
        f"output folder {folder} cannot be created: {tmp_path} is not a writable folder; "
        "set output.dir in the config or --output"
    )
    assert asked == [(tmp_path, os.W_OK | os.X_OK)]

    def not_searchable(path, mode):
        return not mode & os.X_OK

    monkeypatch.setattr(run_folder.os, "access", not_searchable)
    with pytest.raises(OutputError):
        check_writable(folder)


def test_a_link_under_the_name_of_a_new_folder_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "run"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert refused(check_not_link, link, "comparison folder") == (
        f"comparison folder {link} is a symbolic link: ssd-eval writes a new folder of its own there (link "
        "the folder above it if it should live elsewhere); remove the link or choose another name"
    )
    check_not_link(tmp_path / "elsewhere", "run folder")  # a real folder
    check_not_link(tmp_path / "missing", "run folder")  # not there yet


def test_an_output_apart_from_its_inputs(tmp_path):
    inputs = [tmp_path / "s1", tmp_path / "s2"]
    for folder in inputs:
        folder.mkdir()
    what = "the merged folder (--output)"

    def line(output: Path, relation: str, folder: Path) -> str:
        return (
            f"{what} {output} is {relation} the run folder {folder} it is made from: write it into a folder "
            "of its own (another --output)"
        )

    assert refused(check_apart, tmp_path / "s2", inputs, what=what) == line(
        tmp_path / "s2", "the same folder as", tmp_path / "s2"
    )
    inside = tmp_path / "s1" / "m"
    assert refused(check_apart, inside, inputs, what=what) == line(inside, "inside", tmp_path / "s1")
    assert refused(check_apart, tmp_path, inputs, what=what) == line(tmp_path, "a folder holding", inputs[0])
    check_apart(tmp_path, inputs, what=what, parent_ok=True)  # a comparison folder holds its runs
    check_apart(tmp_path / "m", inputs, what=what)
    check_apart(tmp_path / "s10", inputs, what=what)  # a name that only starts like an input's
    # A link to an input is that input.
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "s1", target_is_directory=True)
    assert refused(check_apart, link, inputs, what=what) == line(link, "the same folder as", inputs[0])
    with pytest.raises(OutputError, match="is inside the run folder"):
        check_apart(tmp_path / "s2" / "m", inputs, what=what, parent_ok=True)


def test_what_is_a_run_folder(tmp_path):
    def folder(*names: str) -> Path:
        made = tmp_path / "-".join(names or ("empty",))
        made.mkdir()
        for name in names:
            (made / name).write_text("x")
        return made

    assert is_run_folder(folder("config.yaml", "run_info.json"))
    assert is_run_folder(folder("config.yaml", "detections.jsonl"))
    assert is_run_folder(folder("config.yaml", "run_info.json", "detections.jsonl"))
    assert not is_run_folder(folder("config.yaml"))
    assert not is_run_folder(folder("run_info.json", "detections.jsonl"))
    assert not is_run_folder(folder())


def config(overwrite: bool = False) -> RunConfig:
    return RunConfig(output=OutputConfig(overwrite=overwrite))


def test_a_new_run_folder_is_free_when_missing_or_empty(tmp_path):
    check_run_folder_free(tmp_path / "new", config(), resume=False)
    (tmp_path / "empty").mkdir()
    check_run_folder_free(tmp_path / "empty", config(), resume=False)
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "run.lock").write_text("")  # a lock alone is no content
    check_run_folder_free(tmp_path / "locked", config(), resume=False)


def test_a_folder_that_holds_a_run_is_replaced_only_with_overwrite(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("x")
    (run / "run_info.json").write_text("x")
    assert refused(check_run_folder_free, run, config(), resume=False) == (
        f"run folder {run} already exists: continue it with --resume {run}, choose another --run-name, or "
        "set output.overwrite: true"
    )
    assert refused(check_run_folder_free, run, config(), resume=False, advice=MERGE_ADVICE) == (
        f"run folder {run} already exists: pass --overwrite to replace it, or choose another --output"
    )
    check_run_folder_free(run, config(overwrite=True), resume=False)
    check_run_folder_free(run, config(), resume=True)  # a resume continues it


def test_a_folder_of_other_files_is_never_replaced(tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "config.yaml").write_text("x")  # a config alone is not a run
    assert refused(check_run_folder_free, other, config(overwrite=True), resume=False) == (
        f"{other} holds files but is not a run folder (no config.yaml with run_info.json or "
        "detections.jsonl), so nothing in it is replaced; choose another --run-name"
    )
    assert refused(
        check_run_folder_free, other, config(overwrite=True), resume=False, advice=MERGE_ADVICE
    ).endswith("so nothing in it is replaced; choose another --output")
    (tmp_path / "file").write_text("x")
    assert refused(check_run_folder_free, tmp_path / "file", config(), resume=False) == (
        f"run folder {tmp_path / 'file'} is a file: choose another --run-name or --output"
    )
    link = tmp_path / "link"
    link.symlink_to(other, target_is_directory=True)
    assert refused(check_run_folder_free, link, config(overwrite=True), resume=False).startswith(
        f"run folder {link} is a symbolic link: "
    )


def test_prepare_records_the_config_and_clears_only_a_runs_files(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "run_info.json", "detections.jsonl", "metrics.json", "notes.txt"):
        (run / name).write_text("old")
    (run / "pictures").mkdir()
    (run / "pictures" / "01.jpg").write_text("old")
    prepare_run_folder(run, config(overwrite=True), resume=False, note="# merged\n")
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "notes.txt"]
    text = (run / "config.yaml").read_text()
    assert text.startswith("# merged\nmodel:\n")
    assert yaml.safe_load(text)["output"]["overwrite"] is True
    # A link under the pictures' name goes, not what it points at.
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "a.jpg").write_text("x")
    (run / "pictures").symlink_to(kept, target_is_directory=True)
    (run / "run_info.json").write_text("x")
    prepare_run_folder(run, config(overwrite=True), resume=False)
    assert not (run / "pictures").exists() and (kept / "a.jpg").is_file()
    assert (run / "config.yaml").read_text().startswith("model:\n")


def test_a_resume_keeps_the_runs_files(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "run_info.json", "detections.jsonl"):
        (run / name).write_text("old")
    (run / "pictures").mkdir()
    prepare_run_folder(run, config(), resume=True)
    kept = ["config.yaml", "detections.jsonl", "pictures", "run_info.json"]
    assert sorted(p.name for p in run.iterdir()) == kept
    assert (run / "detections.jsonl").read_text() == "old"


def test_a_run_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    folder = tmp_path / "file" / "run"
    assert refused(prepare_run_folder, folder, config(), resume=False) == (
        f"cannot write the run folder {folder}: Not a directory"
    )


# --- the lock --------------------------------------------------------------------------------------


def test_the_lock_names_its_holder_to_a_second_command(tmp_path):
    run = tmp_path / "run"
    with locked_run_folder(run):
        record = (run / "run.lock").read_bytes()
        assert record == f"ssd-eval pid {os.getpid()}".ljust(63).encode() + b"\n"
        (run / "config.yaml").write_text("x")
        assert refused(lambda: locked_run_folder(run).__enter__()) == (
            f"run folder {run} is in use by ssd-eval pid {os.getpid()}: wait for it to end (or stop it), "
            "or choose another --run-name"
        )
        assert refused(lambda: locked_run_folder(run, create=False, busy=BUSY_OTHER).__enter__()) == (
            f"run folder {run} is in use by ssd-eval pid {os.getpid()}: wait for it to end (or stop it), "
            "then run this command again"
        )
    # Released with the command: the next one gets it.
    with locked_run_folder(run, create=False):
        pass
    assert (run / "config.yaml").is_file()


def test_a_lock_held_by_a_process_that_wrote_no_name(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    fd = os.open(run / "run.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert refused(lambda: locked_run_folder(run).__enter__()) == (
            f"run folder {run} is in use by another process: wait for it to end (or stop it), or choose "
            "another --run-name"
        )
        os.write(fd, b"  \nsecond line")
        assert "is in use by another process:" in refused(lambda: locked_run_folder(run).__enter__())
        os.pwrite(fd, b"job \xff 7\n", 0)  # not UTF-8: shown as far as it reads
        assert f"{run} is in use by job \ufffd 7: " in refused(lambda: locked_run_folder(run).__enter__())
    finally:
        os.close(fd)


def test_a_folder_the_lock_created_goes_again_when_nothing_was_written(tmp_path):
    run = tmp_path / "results" / "deep" / "run"
    with locked_run_folder(run):
        assert (run / "run.lock").is_file()
    assert not (tmp_path / "results").exists()  # with the parents it made
    with pytest.raises(RuntimeError), locked_run_folder(run):
        raise RuntimeError("failed before its first file")
    assert not (tmp_path / "results").exists()
    with locked_run_folder(run):
        (run / "run.lock").unlink()  # the lock file gone meanwhile: the empty folder still goes
    assert not (tmp_path / "results").exists()
    with locked_run_folder(run):
        (run / "config.yaml").write_text("x")
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "run.lock"]
    # A folder that was there before stays, even empty.
    (tmp_path / "there").mkdir()
    with locked_run_folder(tmp_path / "there"):
        pass
    assert (tmp_path / "there").is_dir()


def test_without_create_the_folder_must_exist_and_may_be_a_link(tmp_path):
    missing = tmp_path / "missing"
    assert refused(lambda: locked_run_folder(missing, create=False).__enter__()) == (
        f"cannot write the run folder {missing}: No such file or directory"
    )
    assert not missing.exists()
    (tmp_path / "real").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real", target_is_directory=True)
    with locked_run_folder(link, create=False):
        pass
    assert (tmp_path / "real" / "run.lock").is_file()
    assert refused(lambda: locked_run_folder(link).__enter__()).startswith(
        f"run folder {link} is a symbolic link: "
    )
    assert refused(lambda: locked_run_folder(link, busy=BUSY_OTHER).__enter__()).startswith(
        f"output folder {link} is a symbolic link: "
    )


def test_the_lock_refuses_an_appended_file_planted_as_a_link(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "target").write_text("")
    (run / "history.jsonl").symlink_to(tmp_path / "target")
    with pytest.raises(OutputError, match=r"history.jsonl is a symbolic link: ssd-eval writes only"):
        locked_run_folder(run, create=False).__enter__()


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.ENOSPC, "free some space"),
        (errno.EDQUOT, "free some space"),
        (errno.EROFS, "make the folder writable"),
    ],
)
def test_a_failed_write_is_one_line_naming_the_file(tmp_path, code, fix):
    path = tmp_path / "run" / "detections.jsonl"
    with pytest.raises(OutputError) as info, writing(path):
        raise OSError(code, os.strerror(code))
    assert str(info.value) == (
        f"cannot write {path}: {os.strerror(code)}; {fix}, then continue with --resume {tmp_path / 'run'}"
    )
    with pytest.raises(OutputError) as info, writing(path):
        raise OSError("no errno")
    assert str(info.value).startswith(f"cannot write {path}: no errno; make the folder writable, ")


# --- the config a run started with -----------------------------------------------------------------


def test_the_recorded_config_is_read_with_the_folder_as_its_output(tmp_path):
    run = tmp_path / "results" / "r1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        yaml.safe_dump({"model": {"path": "m.onnx"}, "output": {"dir": "/else", "run_name": "x"}})
    )
    loaded = load_run_config(run)
    assert (loaded.output.dir, loaded.output.run_name) == (tmp_path / "results", "r1")
    assert loaded.model.path == run / "m.onnx"  # relative paths: against the folder
    assert loaded.source_file == run / "config.yaml"


def test_a_folder_without_a_config_is_no_run_folder(tmp_path):
    assert refused(load_run_config, tmp_path) == f"{tmp_path} is not a run folder: it has no config.yaml"


def test_a_recorded_config_that_no_longer_validates_says_how_to_remake_it(tmp_path):
    (tmp_path / "config.yaml").write_text("modle: {}\n")
    with pytest.raises(ConfigError) as info:
        load_run_config(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'config.yaml'}: modle: unknown key (known keys here: ")
    assert str(info.value).endswith(
        "); it is written by `ssd-eval run`: restore it from a copy, or delete the run folder and run again"
    )
    assert REMAKE_RUN.startswith("it is written by `ssd-eval run`")


# --- skipped.jsonl ----------------------------------------------------------------------------------


def test_skipped_images_read_back_as_written(tmp_path):
    path = tmp_path / "skipped.jsonl"
    assert read_skipped(path) == {}
    append_skipped(path, SkippedImage(7, "000000000007.jpg", "cannot identify image file"))
    append_skipped(path, SkippedImage(-3, "b.jpg", "truncated"))
    assert path.read_text() == (
        '{"image_id": 7, "file": "000000000007.jpg", "reason": "cannot identify image file"}\n'
        '{"image_id": -3, "file": "b.jpg", "reason": "truncated"}\n'
    )
    with path.open("a") as handle:
        handle.write("\n   \n" + json.dumps({"image_id": "9", "file": "c.jpg", "reason": "r"}) + "\n")
    assert read_skipped(path) == {
        7: SkippedImage(7, "000000000007.jpg", "cannot identify image file"),
        -3: SkippedImage(-3, "b.jpg", "truncated"),
        9: SkippedImage(9, "c.jpg", "r"),
    }


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("[1]", "expected an object"),
        ('{"image_id": 1.0, "file": "a", "reason": "r"}', "image_id must be an integer with |id| <= "
         "9007199254740991 (2**53 - 1), got 1.0"),
        ('{"file": "a", "reason": "r"}', "image_id must be an integer with |id| <= 9007199254740991 "
         "(2**53 - 1), got None"),
        ('{"image_id": "' + "x" * 60 + '", "file": "a", "reason": "r"}', "image_id must be an integer with "
         "|id| <= 9007199254740991 (2**53 - 1), got '" + "x" * 39),
        ('{"image_id": 1, "file": 2, "reason": "r"}', "file and reason must be strings"),
        ('{"image_id": 1, "file": "a", "reason": null}', "file and reason must be strings"),
        ('{"image_id": 1, "file": "a"', "Expecting ',' delimiter: line 1 column 28 (char 27)"),
    ],
)  # fmt: skip
def test_a_damaged_skipped_line_is_one_line_naming_it(tmp_path, line, why):
    path = tmp_path / "skipped.jsonl"
    path.write_text('{"image_id": 1, "file": "a", "reason": "r"}\n\n' + line + "\n")
    assert refused(read_skipped, path) == (
        f"{path} line 3 is not a skipped-image record ({why}); it is written by `ssd-eval run`: restore it "
        "from a copy, or delete the run folder and run again"
    )


def test_a_skipped_log_that_is_not_text(tmp_path):
    path = tmp_path / "skipped.jsonl"
    path.write_bytes(b"\xff\n")
    assert refused(read_skipped, path) == (
        f"{path} is not readable text ('utf-8' codec can't decode byte 0xff in position 0: invalid start "
        "byte); it is written by `ssd-eval run`: restore it from a copy, or delete the run folder and run "
        "again"
    )


def test_a_deeply_nested_skipped_line(tmp_path):
    path = tmp_path / "skipped.jsonl"
    path.write_text("[" * 100000 + "]" * 100000 + "\n")
    assert refused(read_skipped, path).startswith(f"{path} line 1 is not a skipped-image record (")


# --- run_info.json ---------------------------------------------------------------------------------

MODEL = ModelInfo(path="/models/ssd-10.onnx", sha256="a" * 64, size_bytes=80_000_000, source="ssd-10")
INFO = RunInfo(
    model=MODEL,
    input_size=(1200, 1200),
    shard="2/3",
    providers_requested=("CUDAExecutionProvider", "CPUExecutionProvider"),
    providers_used=("CPUExecutionProvider",),
    provider_options=({"device_id": 0}, {}),
)


def test_run_info_reads_back_as_written(tmp_path):
    write_run_info(tmp_path, INFO)
    data = json.loads((tmp_path / "run_info.json").read_text())
    assert data == {
        "model": {"path": MODEL.path, "sha256": "a" * 64, "size_bytes": 80_000_000, "source": "ssd-10"},
        "input_size": [1200, 1200],
        "shard": "2/3",
        "providers_requested": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "providers_used": ["CPUExecutionProvider"],
        "provider_options": [{"device_id": 0}, {}],
    }
    assert read_run_info(tmp_path) == INFO
    imported = dataclasses.replace(INFO, input_size=None, shard=None)
    write_run_info(tmp_path, imported)
    assert read_run_info(tmp_path) == imported
    assert read_run_info(tmp_path / "elsewhere") is None


def test_run_info_input_size_is_two_whole_numbers():
    data = {**json.loads(json.dumps(dataclasses.asdict(INFO))), "input_size": [600.0, 800]}
    assert RunInfo.from_json(data).input_size == (600, 800)


@pytest.mark.parametrize(
    "change",
    [
        {"shard": 2},
        {"shard": "x"},
        {"shard": "2"},
        {"shard": "0/3"},
        {"input_size": [1200]},
        {"input_size": "big"},
        {"model": {"path": "m.onnx"}},
        {"model": None},
        {"providers_used": None},
    ],
)
def test_a_damaged_run_info_is_one_line(tmp_path, change):
    data = {**dataclasses.asdict(INFO), **change}
    (tmp_path / "run_info.json").write_text(json.dumps(data))
    assert refused(read_run_info, tmp_path) == (
        f"{tmp_path / 'run_info.json'} is damaged; it is written by `ssd-eval run` and should not be edited: "
        "it is written by `ssd-eval run`: restore it from a copy, or delete the run folder and run again"
    )


def test_a_run_info_without_a_key_is_damaged(tmp_path):
    for key in ("model", "input_size", "providers_requested", "providers_used", "provider_options"):
        data = dataclasses.asdict(INFO)
        del data[key]
        (tmp_path / "run_info.json").write_text(json.dumps(data))
        with pytest.raises(OutputError, match=r"run_info\.json is damaged"):
            read_run_info(tmp_path)
    data = dataclasses.asdict(INFO)
    del data["shard"]  # an older folder: no shard recorded, the whole run
    (tmp_path / "run_info.json").write_text(json.dumps(data))
    assert read_run_info(tmp_path) == dataclasses.replace(INFO, shard=None)


def test_a_shard_is_k_of_n():
    assert parse_shard("2/3") == Shard(index=1, count=3)
    assert parse_shard("1/1") == Shard(index=0, count=1)
    assert parse_shard("123456789/999999999") == Shard(index=123456788, count=999999999)
    for text, shown in [
        ("2", "'2'"),
        ("a/3", "'a/3'"),
        ("2/b", "'2/b'"),
        ("/3", "'/3'"),
        ("2/", "'2/'"),
        ("²/3", "'²/3'"),
        ("2/٣", "'2/٣'"),
        ("1234567890/3", "'1234567890/3'"),
        ("1/1234567890", "'1/1234567890'"),
        ("1/" + "9" * 50, repr("1/" + "9" * 38)),
    ]:
        with pytest.raises(ValueError) as info:
            parse_shard(text)
        assert str(info.value) == f"a shard is K/N (whole numbers), got {shown}"


# --- identity.json and history.jsonl ----------------------------------------------------------------


def test_identity_reads_back_as_written(tmp_path):
    from helpers import make_identity

    identity = make_identity(range(101, 113), "2/3")
    assert read_identity(tmp_path) is None
    write_identity(tmp_path, identity)
    assert read_identity(tmp_path) == identity


def test_a_damaged_identity_is_one_line(tmp_path):
    path = tmp_path / "identity.json"
    path.write_text('{"schema": 1}')
    line = refused(read_identity, tmp_path)
    assert line.startswith(f"{path} is damaged (")
    assert line.endswith(f"); {IDENTITY_ADVICE}")
    path.write_text("[1, 2]")
    assert refused(read_identity, tmp_path).endswith(f"); {IDENTITY_ADVICE}")
    path.write_text("{")
    with pytest.raises(ConfigError) as info:
        read_identity(tmp_path)
    assert str(info.value).startswith(f"{path} is not readable JSON (")
    assert str(info.value).endswith(f"); {IDENTITY_ADVICE}")


def test_history_reads_back_in_order(tmp_path):
    first = Provenance(
        started="2026-01-01T00:00:00Z",
        finished="2026-01-01T00:01:00Z",
        command=("ssd-eval", "run"),
        ssd_eval_version="1.0",
        git_commit=None,
        verb="run",
        outcome="stopped",
        images_inferred=6,
        wall_s=60.0,
        timings={"infer": StageTiming(50.0, 8333.333, 8000.0, 9000.0, 6)},
    )
    second = dataclasses.replace(first, verb="score", outcome="finished", images_inferred=0, timings={})
    assert read_history(tmp_path) == ()
    append_history(tmp_path, first)
    with (tmp_path / "history.jsonl").open("a") as handle:
        handle.write("\n")  # a blank line between two entries is passed over, not the end
    append_history(tmp_path, second)
    with (tmp_path / "history.jsonl").open("a") as handle:
        handle.write("  \n")
    assert read_history(tmp_path) == (first, second)
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["timings"]["infer"]["count"] == 6


def test_a_history_entry_with_an_infinite_time_is_never_written(tmp_path):
    entry = Provenance("a", "b", (), "1.0", None, wall_s=float("inf"))
    with pytest.raises(ValueError):
        append_history(tmp_path, entry)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("[1]", "a history entry is not an object"),
        ('{"started": "a"}', "a history entry lacks or mistypes 'finished'"),
        ('{"started": "a", "finished": "b", "timings": 3}', "a history entry lacks or mistypes "
         "'int' object is not iterable"),
        ('{"started": "a", "finished": "b", "wall_s": NaN}', "(NaN is not a JSON number)"),
        ('{"started": "a", "finished": "b", "timings": {"infer": []}}', "must be a mapping, not list"),
    ],
)  # fmt: skip
def test_a_damaged_history_line_is_one_line_naming_it(tmp_path, line, why):
    path = tmp_path / "history.jsonl"
    path.write_text('{"started": "a", "finished": "b"}\n' + line + "\n")
    with pytest.raises(OutputError) as info:
        read_history(tmp_path)
    assert str(info.value).startswith(f"{path} line 2 is damaged (")
    assert why in str(info.value)
    assert str(info.value).endswith(f"); {HISTORY_ADVICE}")


def test_a_history_that_is_not_text(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\xfe")
    assert refused(read_history, tmp_path) == (
        f"{path} is not readable text ('utf-8' codec can't decode byte 0xfe in position 0: invalid start "
        "byte); remove it to start a new history"
    )


# --- the gate's baseline, and the identity of an older folder ---------------------------------------

BASELINE = Baseline(
    name="ssd-10 val2017",
    kind="measured",
    source="results/r1",
    stats={"AP": 0.195},
    protocol={"selection": "annotated", "num_images": 4952},
    model={"name": "ssd-10.onnx"},
)


def test_the_gate_baseline_is_the_folders_copy_first(tmp_path):
    original = tmp_path / "b.json"
    write_baseline(original, BASELINE)
    gate = GateConfig(baseline=original, max_baseline_drop=0.01)
    run = tmp_path / "run"
    run.mkdir()
    cfg = RunConfig(gate=gate, source_file=tmp_path / "c.yaml")
    assert gate_baseline(RunConfig(), run) is None
    assert gate_baseline(cfg, run) == BASELINE  # no copy yet: the config's file
    assert run_baseline(cfg, run, resume=False) == BASELINE
    assert run_baseline(RunConfig(), run, resume=False) is None
    write_gate_baseline(run, None)
    assert not (run / "gate_baseline.json").exists()
    copy = dataclasses.replace(BASELINE, note="the copy")
    write_gate_baseline(run, copy)
    write_gate_baseline(run, copy)  # replaced, not refused
    assert gate_baseline(cfg, run) == copy
    assert run_baseline(cfg, run, resume=True) == copy
    assert run_baseline(cfg, run, resume=False) == BASELINE  # a new run reads its config's file
    # The rules it names, the baseline by content.
    rules = folder_rules(cfg, run)
    assert rules["gate.baseline"] == baseline_digest(copy)
    assert rules["gate.max_baseline_drop"] == 0.01 and rules["expected"] is None
    assert folder_rules(RunConfig(expected=ExpectedConfig(value=0.2)), run)["gate.baseline"] is None


def test_a_bad_gate_baseline_names_where_it_was_set(tmp_path):
    missing = tmp_path / "missing.json"
    gate = GateConfig(baseline=missing)
    with pytest.raises(ConfigError, match=f"^baseline file {missing} not found"):
        run_baseline(RunConfig(gate=gate), tmp_path, resume=False)
    write_baseline(tmp_path / "b.json", BASELINE)
    gate = GateConfig(baseline=tmp_path / "b.json", max_class_baseline_drop=0.1)
    with pytest.raises(ConfigError) as info:
        run_baseline(RunConfig(gate=gate, source_file=tmp_path / "c.yaml"), tmp_path, resume=False)
    assert str(info.value).startswith(f"{tmp_path / 'c.yaml'}: gate.max_class_baseline_drop: ")
    with pytest.raises(ConfigError) as info:
        run_baseline(RunConfig(gate=gate), tmp_path, resume=False)
    assert str(info.value).startswith("config: gate.max_class_baseline_drop: ")
    with pytest.raises(ConfigError) as info:
        gate_baseline(RunConfig(gate=gate), tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'config.yaml'}: gate.max_class_baseline_drop: ")


def test_an_older_folder_gets_its_identity_from_what_it_recorded(tmp_path, tiny_coco):
    annotations = tiny_coco / "annotations" / "instances_val2017.json"
    gt = open_ground_truth(annotations, tiny_coco / "val2017")
    cfg = RunConfig(expected=ExpectedConfig(value=0.5))
    identity = derived_identity(tmp_path, cfg, INFO, gt)
    # Shard 2/3 of the 5 annotated images (1, 2, 5, 7, 9): the 2nd and 5th.
    assert identity.images.shard == "2/3" and identity.images.image_ids == (2, 9)
    assert (identity.images.whole_count, identity.images.selection) == (5, "annotated")
    assert (identity.model_sha256, identity.model_name) == ("a" * 64, "ssd-10.onnx")
    assert identity.provider == "CUDAExecutionProvider" and identity.input_size == (1200, 1200)
    assert (identity.preprocess, identity.scorer) == ("pillow", "pycocotools")
    assert identity.rules["expected.value"] == 0.5
    # A new run is given the ground truth its config chose, as it is.
    whole = derived_identity(tmp_path, cfg, INFO, gt, legacy=False)
    assert whole.images.shard is None and whole.images.image_ids == (1, 2, 5, 7, 9)
    # An older whole run with a limit: the first images of the selection.
    limited = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, limit=2, selection="all"))
    first = derived_identity(tmp_path, limited, dataclasses.replace(INFO, shard=None), gt)
    assert first.images.image_ids == (1, 2) and (first.images.limit, first.images.selection) == (2, "all")
    assert len(TINY_IMAGES) == 6  # selection "all" counts image 11 too
    assert first.images.whole_count == 2
    # No provider requested (never written so, but read): no provider under test.
    none = derived_identity(tmp_path, cfg, dataclasses.replace(INFO, providers_requested=()), gt)
    assert none.provider == ""


def test_an_older_folder_without_an_input_size_has_no_identity(tmp_path, tiny_coco):
    annotations = tiny_coco / "annotations" / "instances_val2017.json"
    gt = open_ground_truth(annotations, tiny_coco / "val2017")
    info = dataclasses.replace(INFO, input_size=None)
    assert refused(derived_identity, tmp_path, RunConfig(), info, gt) == (
        f"{tmp_path} has no identity.json, and its run_info.json names no input size"
    )
