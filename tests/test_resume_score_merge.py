"""Never lose a run, scale it out: pipeline = sequential, resume, re-score, shard + merge, exactly."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from helpers import Det, TinyImage, make_coco, make_identity, save_table_detector, write_config

import ssd_eval.engine.runner as runner_module
from ssd_eval.cli import main
from ssd_eval.config.run import RunConfig
from ssd_eval.engine.merge import ShardRun, check_compatible, merge_runs
from ssd_eval.engine.run_folder import RunInfo
from ssd_eval.errors import DatasetError, OutputError
from ssd_eval.evaluation.identity import GroundTruthIdentity, RunIdentity
from ssd_eval.reports.results import ModelInfo, StageTiming, combine_timings

IMAGES = tuple(TinyImage(10 + 3 * i, 40 + 7 * i, 60 - 2 * i) for i in range(12))
GT = {im.image_id: [Det(2, 3, 20, 15 + i % 5, (1, 18, 90)[i % 3])] for i, im in enumerate(IMAGES)}
# A detector with known mistakes: jittered boxes, a wrong class, false positives that outrank hits.
DETS = {
    im.image_id: [
        Det(2 + i % 4, 3, 20, 14, (1, 18, 90)[i % 3], score=0.5 + 0.03 * i),
        Det(10, 10, 8, 8, (18, 1, 90)[i % 3], score=0.9 - 0.02 * i),
    ]
    for i, im in enumerate(IMAGES)
}


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _same_result(a: dict, b: dict) -> None:
    assert a["stats"] == b["stats"]  # exactly, not approximately
    assert a["per_category"] == b["per_category"]
    assert a["num_detections"] == b["num_detections"]
    assert a["protocol"]["num_images"] == b["protocol"]["num_images"]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    root = make_coco(tmp_path / "coco", IMAGES, GT)
    model = save_table_detector(tmp_path / "model.onnx", root, DETS)
    return root, write_config(tmp_path / "run.yaml", model, root)


def _run(config: Path, name: str, *extra: str) -> int:
    return main(["--config", str(config), "--run-name", name, "--quiet", *extra])


def _reference(config: Path) -> dict:
    assert _run(config, "whole") == 0
    metrics = _metrics(config.parent / "results" / "whole")
    assert 0.1 < metrics["stats"]["AP"] < 0.9  # the mistakes count
    return metrics


def test_pipeline_equals_the_sequential_path(tmp_path, setup):
    root, _ = setup
    model = tmp_path / "model.onnx"
    outputs = {}
    for workers in (0, 3):
        config = write_config(tmp_path / f"w{workers}.yaml", model, root, preprocess={"workers": workers})
        assert _run(config, f"w{workers}") == 0
        outputs[workers] = tmp_path / "results" / f"w{workers}"
    sequential, parallel = outputs[0], outputs[3]
    assert (sequential / "detections.jsonl").read_text() == (parallel / "detections.jsonl").read_text()
    _same_result(_metrics(sequential), _metrics(parallel))
    ids = [json.loads(line)["image_id"] for line in (parallel / "detections.jsonl").read_text().splitlines()]
    assert ids == sorted(im.image_id for im in IMAGES)  # written in image order


def test_a_corrupt_image_mid_run_stops_cleanly_and_keeps_what_was_done(tmp_path, setup, capsys):
    root, config = setup
    bad = root / "val2017" / f"{IMAGES[5].image_id:012d}.png"
    bad.write_bytes(b"not a png at all")
    assert _run(config, "broken", "--quiet") == 2
    err = capsys.readouterr().err
    assert bad.name in err and "--resume" in err and "5 images done" in err
    run_dir = tmp_path / "results" / "broken"
    done = [json.loads(line)["image_id"] for line in (run_dir / "detections.jsonl").read_text().splitlines()]
    assert done == [im.image_id for im in IMAGES[:5]]


def test_an_interrupted_run_resumes_to_identical_metrics(tmp_path, setup, monkeypatch):
    _, config = setup
    reference = _reference(config)
    real_decode = runner_module.decode_image
    calls = {"n": 0}

    def dies_at_the_seventh(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # what Ctrl-C (or a dying process) does mid-run
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(runner_module, "decode_image", dies_at_the_seventh)
    assert _run(config, "cut") == 130
    run_dir = tmp_path / "results" / "cut"
    assert len((run_dir / "detections.jsonl").read_text().splitlines()) == 6
    assert not (run_dir / "metrics.json").exists()
    monkeypatch.setattr(runner_module, "decode_image", real_decode)
    assert main(["--resume", str(run_dir), "--quiet"]) == 0
    _same_result(_metrics(run_dir), reference)


def test_a_run_killed_mid_write_resumes_to_identical_metrics(tmp_path, setup):
    """What SIGKILL leaves: a log whose last line is torn in the middle."""
    _, config = setup
    reference = _reference(config)
    whole = tmp_path / "results" / "whole"
    killed = tmp_path / "results" / "killed"
    killed.mkdir()
    for name in ("config.yaml", "run_info.json"):
        (killed / name).write_bytes((whole / name).read_bytes())
    lines = (whole / "detections.jsonl").read_text().splitlines(keepends=True)
    (killed / "detections.jsonl").write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
    assert main(["--resume", str(killed), "--quiet"]) == 0
    _same_result(_metrics(killed), reference)
    assert (killed / "detections.jsonl").read_text() == (whole / "detections.jsonl").read_text()


def test_score_run_dir_equals_the_runs_metrics(tmp_path, setup):
    _, config = setup
    reference = _reference(config)
    run_dir = tmp_path / "results" / "whole"
    (run_dir / "metrics.json").unlink()
    assert main(["score", str(run_dir), "--quiet"]) == 0
    _same_result(_metrics(run_dir), reference)
    (run_dir / "detections.npz").unlink()  # the store is rebuilt from the log
    assert main(["score", str(run_dir), "--quiet", "--scorer", "numpy"]) == 0
    _same_result(_metrics(run_dir), reference)  # bit-identical to pycocotools
    assert _metrics(run_dir)["config"]["scoring"]["backend"] == "numpy"
    assert (run_dir / "detections.npz").is_file()
    pytest.importorskip("faster_coco_eval")
    assert main(["score", str(run_dir), "--quiet", "--scorer", "faster-coco-eval"]) == 0
    fast = _metrics(run_dir)
    assert fast["stats"] == pytest.approx(reference["stats"], abs=1e-12)
    assert fast["config"]["scoring"]["backend"] == "faster-coco-eval"


def test_score_refuses_an_unfinished_run(tmp_path, setup, capsys):
    _, config = setup
    _reference(config)
    run_dir = tmp_path / "results" / "whole"
    lines = (run_dir / "detections.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "detections.jsonl").write_text("".join(lines[:3]))
    assert main(["score", str(run_dir), "--quiet"]) == 2
    assert "9 of 12 images have no detections" in capsys.readouterr().err


def test_three_shards_merged_equal_the_unsharded_run(tmp_path, setup):
    _, config = setup
    reference = _reference(config)
    shard_dirs = []
    for k in (1, 2, 3):
        assert _run(config, f"s{k}", "--shard", f"{k}/3") == 0
        shard_dirs.append(tmp_path / "results" / f"s{k}")
    sizes = [_metrics(d)["protocol"]["num_images"] for d in shard_dirs]
    assert sizes == [4, 4, 4]
    merged = tmp_path / "results" / "merged"
    assert main(["merge", *map(str, reversed(shard_dirs)), "--output", str(merged), "--quiet"]) == 0
    result = _metrics(merged)
    _same_result(result, reference)
    assert result["protocol"]["shard"] is None
    assert (merged / "detections.jsonl").read_text() == (
        tmp_path / "results/whole/detections.jsonl"
    ).read_text()


def test_shards_partition_the_images(tmp_path, setup):
    _, config = setup
    seen = []
    for k in (1, 2, 3):
        assert _run(config, f"p{k}", "--shard", f"{k}/3") == 0
        log = (tmp_path / "results" / f"p{k}" / "detections.jsonl").read_text().splitlines()
        seen.append({json.loads(line)["image_id"] for line in log})
    assert set.union(*seen) == {im.image_id for im in IMAGES}
    assert sum(len(s) for s in seen) == len(IMAGES)


def test_merge_refuses_runs_that_do_not_belong_together(tmp_path, setup, capsys):
    root, config = setup
    assert _run(config, "a1", "--shard", "1/2") == 0
    # Another model: same answers, different bytes (the detection table grows by a padding column).
    other = save_table_detector(tmp_path / "other.onnx", root, DETS, max_dets=3)
    other_config = write_config(tmp_path / "other.yaml", other, root)
    assert _run(other_config, "b2", "--shard", "2/2") == 0
    results = tmp_path / "results"
    assert main(["merge", str(results / "a1"), str(results / "b2"), "--quiet"]) == 2
    assert "model sha256" in capsys.readouterr().err
    clipped = write_config(tmp_path / "clip.yaml", tmp_path / "model.onnx", root, decode={"clip_boxes": True})
    assert _run(clipped, "c2", "--shard", "2/2") == 0
    assert main(["merge", str(results / "a1"), str(results / "c2"), "--quiet"]) == 2
    assert "decode.clip_boxes is true in" in capsys.readouterr().err
    assert main(["merge", str(results / "a1"), "--quiet"]) == 2
    assert "shard(s) 2 of 2 are missing" in capsys.readouterr().err
    assert main(["merge", str(results / "a1"), str(results / "a1"), "--quiet"]) == 2
    assert "given twice" in capsys.readouterr().err


def test_resume_keeps_the_shard_it_started_with(tmp_path, setup, capsys):
    _, config = setup
    assert _run(config, "s2", "--shard", "2/3") == 0
    run_dir = tmp_path / "results" / "s2"
    assert main(["--resume", str(run_dir), "--quiet"]) == 0
    assert _metrics(run_dir)["protocol"]["shard"] == "2/3"
    assert main(["--resume", str(run_dir), "--shard", "1/3", "--quiet"]) == 2
    assert "differs from the shard 2/3" in capsys.readouterr().err


def test_default_merge_folder_drops_the_shard_suffix():
    from ssd_eval.engine.merge import default_output

    folders = [Path("/r/cpu-run-shard2of12"), Path("/other/cpu-run-shard1of12")]
    assert default_output(folders) == Path("/r/cpu-run-merged")
    assert default_output([Path("/r/plain")]) == Path("/r/plain-merged")


# Which shard folders merge accepts, and how their timings add up (pure, no runs; issue 11).

MODEL = ModelInfo(path="/m/ssd.onnx", sha256="a" * 64, size_bytes=10, source=None)
WHOLE = tuple(range(101, 113))  # the whole selection the shards are cut from: 12 image ids


def identity(k: str | None, **changes) -> RunIdentity:
    return make_identity(WHOLE, k, **changes)


def shard(folder: str, k: str | None, **changes) -> ShardRun:
    info = RunInfo(
        model=MODEL,
        input_size=(1200, 1200),
        shard=k,
        providers_requested=("CUDAExecutionProvider", "CPUExecutionProvider"),
        providers_used=("CUDAExecutionProvider", "CPUExecutionProvider"),
        provider_options=({}, {}),
    )
    return ShardRun(Path(folder), RunConfig(), info, identity(k, **changes))


def refusal(*runs: ShardRun) -> str:
    with pytest.raises(OutputError) as info:
        check_compatible(runs)
    return str(info.value)


def test_a_complete_set_of_shards_in_any_order():
    assert check_compatible([shard("/r/s3", "3/3"), shard("/r/s1", "1/3"), shard("/r/s2", "2/3")]) == 3
    assert check_compatible([shard("/r/a", "1/2"), shard("/r/b", "2/2")]) == 2


def test_another_model_or_provider_is_refused():
    assert refusal(shard("/r/a", "1/2"), shard("/r/b", "2/2", model_sha256="b" * 64)) == (
        "cannot merge: model sha256 is sha256 bbbbbbbbbbbb… in /r/b but sha256 aaaaaaaaaaaa… in /r/a; "
        "merge only the shards of one run"
    )
    assert refusal(shard("/r/a", "1/2"), shard("/r/b", "2/2", provider="CPUExecutionProvider")) == (
        "cannot merge: provider is 'CPUExecutionProvider' in /r/b but 'CUDAExecutionProvider' in /r/a; "
        "merge only the shards of one run"
    )


@pytest.mark.parametrize(
    ("key", "change", "shown"),
    [
        (
            "ground truth",
            {"ground_truth": GroundTruthIdentity("e" * 64, "d" * 64, 12, 12)},
            "annotations with",
        ),
        ("decode.clip_boxes", {"clip_boxes": True}, "true"),
        ("decode.score_threshold", {"score_threshold": 0.5}, "0.5"),
        ("preprocess.backend", {"preprocess": "opencv"}, "'opencv'"),
        ("preprocess.mean", {"mean": (0.5, 0.5, 0.5)}, "[0.5, 0.5, 0.5]"),
        ("input size", {"input_size": (1200, 600)}, "1200x600"),
        ("expected.value", {"rules": {"expected.value": 0.2}}, "0.2"),
    ],
)
def test_another_identity_is_refused_naming_the_setting(key, change, shown):
    message = refusal(shard("/r/a", "1/2"), shard("/r/b", "2/2", **change))
    assert message.startswith(f"cannot merge: {key} is {shown}")
    assert " in /r/b but " in message
    assert message.endswith(" in /r/a; merge only the shards of one run")


def test_shards_of_another_selection_are_refused():
    other = dataclasses.replace(identity("2/2").images, limit=6)
    message = refusal(shard("/r/a", "1/2"), shard("/r/b", "2/2", images=other))
    assert message == (
        "cannot merge: dataset.limit is 6 in /r/b but null in /r/a; merge only the shards of one run"
    )


def test_shard_sets_that_are_not_one_run():
    assert refusal(shard("/r/a", "1/2"), shard("/r/b", None)) == (
        "cannot merge: /r/b is not a shard (it was run without --shard K/N)"
    )
    assert (
        refusal(shard("/r/a", "1/2"), shard("/r/b", "2/3")) == "cannot merge: shard counts differ (1/2, 2/3)"
    )
    assert refusal(shard("/r/a", "1/2"), shard("/r/b", "1/2")) == (
        "cannot merge: shard 1/2 is given twice (/r/a and /r/b)"
    )
    assert refusal(shard("/r/a", "2/4")) == (
        "cannot merge: shard(s) 1, 3, 4 of 4 are missing; give every shard's run folder"
    )


def test_parts_that_overlap_or_do_not_make_the_whole():
    overlapping = dataclasses.replace(identity("2/2").images, image_ids=(101, 104))
    assert refusal(shard("/r/a", "1/2"), shard("/r/b", "2/2", images=overlapping)) == (
        "cannot merge: image 101 is in both /r/a and /r/b; merge only the shards of one run"
    )
    short = dataclasses.replace(identity("2/2").images, image_ids=(102, 104))
    assert refusal(shard("/r/a", "1/2"), shard("/r/b", "2/2", images=short)) == (
        "cannot merge: the shards' 8 images are not the 12 images of the selection they were cut from; "
        "merge only the shards of one run"
    )
    # As many images as the whole, but not its: shard 2 lists 999 in place of 112.
    other = dataclasses.replace(identity("2/2").images, image_ids=(102, 104, 106, 108, 110, 999))
    assert refusal(shard("/r/a", "1/2"), shard("/r/b", "2/2", images=other)) == (
        "cannot merge: the shards' 12 images are not the 12 images of the selection they were cut from; "
        "merge only the shards of one run"
    )


def test_timings_add_up_by_hand():
    a = {"infer": StageTiming(2.0, 20.0, 18.0, 30.0, 100), "read": StageTiming(0.5, 5.0, 4.0, 9.0, 100)}
    b = {"infer": StageTiming(1.0, 10.0, 9.0, 12.0, 300), "decode": StageTiming(0.0, 0.0, 0.0, 0.0, 0)}
    combined = combine_timings([a, b])
    # A stage with no sample ("decode", sorted first) is left out, and the stages after it are kept.
    assert sorted(combined) == ["infer", "read"]
    # infer: 3.0 s over 400 images -> 7.5 ms; median (18*100 + 9*300) / 400 = 11.25;
    # p90 (30*100 + 12*300) / 400 = 16.5.
    assert combined["infer"] == StageTiming(total_s=3.0, mean_ms=7.5, median_ms=11.25, p90_ms=16.5, count=400)
    assert combined["read"] == StageTiming(total_s=0.5, mean_ms=5.0, median_ms=4.0, p90_ms=9.0, count=100)
    # Rounding: seconds to 4 places, milliseconds to 3.
    c = {"infer": StageTiming(1.23456789, 1.0, 1.23456789, 2.34567891, 3)}
    assert combine_timings([c])["infer"] == StageTiming(1.2346, 411.523, 1.235, 2.346, 3)
    assert combine_timings([]) == {}


def _set_timings(folder: Path, *, wall_s: float, inferred: int) -> None:
    """Give a finished shard known timings (the real ones are whatever this machine took): its one
    inference part in history.jsonl, which the merge adds up."""
    entries = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    (part,) = [e for e in entries if e["verb"] in ("run", "resume")]
    part["wall_s"] = wall_s
    part["images_inferred"] = inferred
    infer = {"total_s": wall_s / 2, "mean_ms": 1.0, "median_ms": 1.0, "p90_ms": 1.0, "count": inferred}
    part["timings"] = {"infer": infer}
    (folder / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))


def test_merge_runs_by_hand(tmp_path, setup, caplog):
    """merge_runs itself: skipped images, timings, the output folder, overwrite, overrides, refusals."""
    root, _ = setup
    bad = IMAGES[5]
    (root / "val2017" / f"{bad.image_id:012d}.png").write_bytes(b"not a png at all")
    config = write_config(
        tmp_path / "skip.yaml", tmp_path / "model.onnx", root, dataset={"on_bad_image": "skip"}
    )
    assert _run(config, "whole") == 0
    whole = tmp_path / "results" / "whole"
    assert [s["image_id"] for s in _metrics(whole)["skipped_images"]] == [bad.image_id]
    shards = []
    for k, wall_s, inferred in ((1, 0.5, 4), (2, 0.25, 2)):
        assert _run(config, f"cpu-shard{k}of2", "--shard", f"{k}/2") == 0
        shards.append(tmp_path / "results" / f"cpu-shard{k}of2")
        _set_timings(shards[-1], wall_s=wall_s, inferred=inferred)
    # Which shard skipped the bad image depends on the partition; the merge must carry it either way.
    assert sum(len(_metrics(s)["skipped_images"]) for s in shards) == 1

    with pytest.raises(OutputError, match=r"^cannot merge: give the run folders of the shards$"):
        merge_runs([])

    out = tmp_path / "elsewhere" / "m"
    caplog.clear()
    result = merge_runs(shards, out)
    assert "different fallback providers" not in caplog.text
    assert result.run_dir == str(out)
    _same_result(_metrics(out), _metrics(whole))
    assert (out / "detections.jsonl").read_text() == (whole / "detections.jsonl").read_text()
    assert (out / "skipped.jsonl").read_text() == (whole / "skipped.jsonl").read_text()
    assert [s.image_id for s in result.skipped_images] == [bad.image_id]
    recorded = yaml.safe_load((out / "config.yaml").read_text())["output"]
    assert (recorded["dir"], recorded["run_name"], recorded["overwrite"]) == (str(out.parent), "m", False)
    # Wall times add up (0.5 + 0.25 s, below one second); 4 + 2 images inferred: 6 / 0.75 = 8 images/s.
    assert (result.wall_s, result.images_per_s) == (0.75, 8.0)

    # A finished merge is not replaced silently; with overwrite it is, and nothing is appended twice.
    with pytest.raises(OutputError, match="already exists"):
        merge_runs(shards, out)
    merge_runs(shards, out, overwrite=True)
    assert (out / "detections.jsonl").read_text() == (whole / "detections.jsonl").read_text()
    assert (out / "skipped.jsonl").read_text() == (whole / "skipped.jsonl").read_text()

    # No output folder: beside the first shard, without its shard suffix.
    assert merge_runs(shards).run_dir == str(tmp_path / "results" / "cpu-merged")

    # No time recorded: no throughput (not a division by zero).
    for folder in shards:
        _set_timings(folder, wall_s=0.0, inferred=3)
    assert merge_runs(shards, tmp_path / "untimed").images_per_s == 0.0

    # Another scorer and a moved dataset, as `ssd-eval merge --backend --data` give them.
    moved = root.rename(tmp_path / "moved")
    with pytest.raises(DatasetError):
        merge_runs(shards, tmp_path / "lost")
    rescored = merge_runs(shards, tmp_path / "moved-numpy", backend="numpy", data=moved)
    recorded = yaml.safe_load((tmp_path / "moved-numpy" / "config.yaml").read_text())
    assert recorded["scoring"]["backend"] == "numpy"
    assert rescored.stats["AP"] == pytest.approx(_metrics(whole)["stats"]["AP"], abs=1e-12)

    # A fallback provider only one shard used is worth a warning, not a refusal.
    info = json.loads((shards[1] / "run_info.json").read_text())
    info["providers_used"] = [*info["providers_used"], "OtherExecutionProvider"]
    (shards[1] / "run_info.json").write_text(json.dumps(info))
    caplog.clear()
    merge_runs(shards, tmp_path / "mixed", data=moved)
    assert "the shards used different fallback providers" in caplog.text

    # A shard that lost an image is refused, naming the shard's folder.
    log_lines = (shards[1] / "detections.jsonl").read_text().splitlines(keepends=True)
    (shards[1] / "detections.jsonl").write_text("".join(log_lines[1:]))
    holed = rf"^{re.escape(str(shards[1]))}: 1 of 6 images have no detections yet"
    with pytest.raises(OutputError, match=holed):
        merge_runs(shards, tmp_path / "holed", data=moved)
