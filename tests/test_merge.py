"""Merging shards (engine/merge.py) on run folders written by hand, without a model.

The tiny COCO set (tests/conftest.py) has 5 annotated images, 1 2 5 7 9; shards take every K-th of them:
1/2 = 1 5 9, 2/2 = 2 7. The shards log the ground truth as detections (AP 1.0), or leave image 2's
person out (a hand count: 3 of 4 persons at precision 1, 76 of 101 recall points).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import TINY_GT
from helpers import write_run_folder

from ssd_eval.engine.merge import _parts, _read_shards, default_output, merge_runs, plan_merge, write_merge
from ssd_eval.engine.run_folder import locked_run_folder, read_history, read_run_info
from ssd_eval.errors import OutputError
from ssd_eval.reports.results import StageTiming

AP_WITHOUT_2 = (76 / 101 + 1 + 1) / 3


def shards(tmp_path: Path, root: Path, detections=TINY_GT, **kwargs) -> list[Path]:
    """Shards 1/2 (3 images, 1.5 s) and 2/2 (2 images, 0.5 s) of one run."""
    return [
        write_run_folder(tmp_path / "results" / f"run-shard{k}of2", root, detections, shard=f"{k}/2",
                         history=[("run", n, wall)], **kwargs)
        for k, n, wall in ((1, 3, 1.5), (2, 2, 0.5))
    ]  # fmt: skip


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_shards_merge_to_the_whole_run(tmp_path, tiny_coco, caplog):
    first, second = shards(tmp_path, tiny_coco, {k: v for k, v in TINY_GT.items() if k != 2},
                           skipped={2: "truncated"})  # fmt: skip
    caplog.set_level(logging.INFO, logger="ssd_eval.engine.merge")
    result = merge_runs([second, first])  # any order
    target = tmp_path / "results" / "run-merged"
    assert result.run_dir == str(target)
    assert result.stats["AP"] == pytest.approx(AP_WITHOUT_2, abs=1e-12)
    assert [d["image_id"] for d in lines(target / "detections.jsonl")] == [1, 5, 7, 9]  # image order
    assert lines(target / "skipped.jsonl") == [
        {"image_id": 2, "file": "000000000002.png", "reason": "truncated"}
    ]
    info = read_run_info(target)
    assert info is not None and info.shard is None
    identity = json.loads((target / "identity.json").read_text())
    assert identity["images"]["shard"] is None and identity["images"]["image_ids"] == [1, 2, 5, 7, 9]
    # The history: each shard's inference part (named by its folder), then the merge naming both.
    history = read_history(target)
    assert [(e.verb, e.folder, e.images_inferred, e.wall_s) for e in history] == [
        ("run", "run-shard1of2", 3, 1.5),
        ("run", "run-shard2of2", 2, 0.5),
        ("merge", "run-shard1of2, run-shard2of2", 0, 0.0),
    ]
    assert history[-1].command == ("python", "-c", "ssd_eval.merge(...)")
    # The whole's times: 5 images in 2.0 s; infer 0.75 + 0.25 s over 5.
    assert (result.wall_s, result.images_per_s) == (2.0, 2.5)
    assert result.timings["infer"] == StageTiming(1.0, 200.0, 1.0, 1.0, 5)
    assert "merged 2 shards of 2 into " + str(target) in caplog.text
    assert "different fallback providers" not in caplog.text


def test_the_merge_records_the_command_that_made_it(tmp_path, tiny_coco):
    folders = shards(tmp_path, tiny_coco)
    command = ("ssd-eval", "merge", *map(str, folders))
    merge_runs(folders, tmp_path / "m", command=command)
    assert read_history(tmp_path / "m")[-1].command == command


def test_the_plan_takes_shards_in_shard_order_and_keeps_their_own_images(tmp_path, tiny_coco):
    first, second = shards(tmp_path, tiny_coco)
    # A log line of an image of the other shard (a hand edit) is not the shard's: left out.
    with (second / "detections.jsonl").open("a") as log, (first / "detections.jsonl").open() as other:
        log.write(other.readline())
    plan = plan_merge([second, first], tmp_path / "m", overwrite=True)
    assert [r.folder for r in plan.runs] == [first, second]
    assert (plan.count, plan.target) == (2, tmp_path / "m")
    assert sorted(plan.detections) == [1, 2, 5, 7, 9] and plan.skipped == {}
    assert plan.gt.image_ids == [1, 2, 5, 7, 9] and plan.gt.shard is None
    assert (plan.config.output.dir, plan.config.output.run_name, plan.config.output.overwrite) == (
        tmp_path,
        "m",
        True,
    )
    assert plan.identity.images.image_ids == (1, 2, 5, 7, 9)
    assert plan_merge([first, second], tmp_path / "m").config.output.overwrite is False
    with pytest.raises(OutputError, match=r"^cannot merge: give the run folders of the shards$"):
        plan_merge([])


def test_the_merged_folder_is_apart_from_its_shards(tmp_path, tiny_coco):
    first, second = shards(tmp_path, tiny_coco)
    with pytest.raises(OutputError) as info:
        plan_merge([first, second], first / "m")
    assert str(info.value) == (
        f"the merged folder (--output) {first / 'm'} is inside the run folder {first} it is made from: "
        "write it into a folder of its own (another --output)"
    )


def test_a_merge_into_a_folder_in_use_is_refused(tmp_path, tiny_coco):
    folders = shards(tmp_path, tiny_coco)
    target = tmp_path / "m"
    with locked_run_folder(target), pytest.raises(OutputError) as info:
        merge_runs(folders, target)
    assert str(info.value) == (
        f"run folder {target} is in use by ssd-eval pid {__import__('os').getpid()}: wait for it to end (or "
        "stop it), then run this command again"
    )


def test_a_finished_merge_is_replaced_only_with_overwrite(tmp_path, tiny_coco):
    folders = shards(tmp_path, tiny_coco)
    target = tmp_path / "m"
    merge_runs(folders, target)
    with pytest.raises(OutputError) as info:
        merge_runs(folders, target)
    assert str(info.value) == (
        f"run folder {target} already exists: pass --overwrite to replace it, or choose another --output"
    )
    merge_runs(folders, target, overwrite=True)
    assert [d["image_id"] for d in lines(target / "detections.jsonl")] == [1, 2, 5, 7, 9]
    assert [e.verb for e in read_history(target)] == ["run", "run", "merge"]  # not appended twice


def test_shards_that_used_other_fallback_providers_are_merged_with_a_warning(tmp_path, tiny_coco, caplog):
    first, second = shards(tmp_path, tiny_coco)
    info = json.loads((second / "run_info.json").read_text())
    info["providers_used"] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    (second / "run_info.json").write_text(json.dumps(info))
    caplog.set_level(logging.WARNING, logger="ssd_eval.engine.merge")
    merge_runs([first, second], tmp_path / "m")
    assert [r.getMessage() for r in caplog.records] == [
        "the shards used different fallback providers: CPUExecutionProvider, CUDAExecutionProvider"
    ]
    merged = read_run_info(tmp_path / "m")
    assert merged is not None and merged.providers_used == ("CPUExecutionProvider",)  # the first shard's


def test_a_shard_with_an_image_missing_is_refused_naming_it(tmp_path, tiny_coco):
    first, second = shards(tmp_path, tiny_coco)
    log = second / "detections.jsonl"
    log.write_text(
        "".join(line for line in log.read_text().splitlines(keepends=True) if '"image_id":7,' not in line)
    )
    with pytest.raises(OutputError) as info:
        merge_runs([first, second], tmp_path / "m")
    assert str(info.value) == (
        f"{second}: 1 of 2 images have no detections yet (first: image 7): finish the run with "
        f"`ssd-eval run --resume {second}`"
    )
    assert not (tmp_path / "m").exists()


def test_older_shards_merge_by_the_identity_they_imply(tmp_path, tiny_coco, monkeypatch):
    folders = shards(tmp_path, tiny_coco, identity=False)
    import ssd_eval.engine.merge as merge_module

    reads = []
    real = merge_module.scoring_ground_truth

    def counted(config, shard, identity=None):
        reads.append(shard)
        return real(config, shard, identity)

    monkeypatch.setattr(merge_module, "scoring_ground_truth", counted)
    runs = _read_shards(folders, backend=None, data=None)
    assert reads == [None]  # one annotation file, read once
    assert [r.identity.images.image_ids for r in runs] == [(1, 5, 9), (2, 7)]
    assert [r.identity.images.shard for r in runs] == ["1/2", "2/2"]
    result = merge_runs(folders, tmp_path / "m")
    assert result.stats["AP"] == pytest.approx(1.0, abs=1e-12)


def test_older_shards_of_two_data_sets_are_refused(tmp_path, tiny_coco):
    """Each older shard's identity comes from its own annotation file: another one is another run."""
    from conftest import TINY_IMAGES
    from helpers import Det, make_coco

    other = make_coco(tmp_path / "other", TINY_IMAGES, {**TINY_GT, 9: [Det(1, 1, 5, 5, 1)]})
    first = write_run_folder(tmp_path / "s1", tiny_coco, TINY_GT, shard="1/2", identity=False)
    second = write_run_folder(tmp_path / "s2", other, TINY_GT, shard="2/2", identity=False)
    with pytest.raises(OutputError) as info:
        merge_runs([first, second], tmp_path / "m")
    line = str(info.value)
    assert line.startswith("cannot merge: ground truth is annotations with content sha256 ")
    assert f"… in {second} but annotations with content sha256 " in line
    assert line.endswith(f"… in {first}; merge only the shards of one run")


def test_the_parts_of_an_older_shard_come_from_its_metrics(tmp_path, tiny_coco):
    (folder,) = [
        write_run_folder(tmp_path / "s1", tiny_coco, TINY_GT, shard="1/2", history=[("score", 0, 0.0)])
    ]
    metrics = {
        "timings": {
            "infer": {"total_s": 1.0, "mean_ms": 333.333, "median_ms": 300.0, "p90_ms": 400.0, "count": 3}
        },
        "wall_s": 2.0,
        "images_per_s": 1.5,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (run,) = _read_shards([folder], backend=None, data=None)
    (part,) = _parts(run)
    assert (part.verb, part.folder, part.images_inferred, part.wall_s) == ("run", "s1", 3, 2.0)
    assert (part.started, part.finished, part.command, part.ssd_eval_version, part.git_commit) == (
        "",
        "",
        (),
        "",
        None,
    )
    assert part.timings == {"infer": StageTiming(1.0, 333.333, 300.0, 400.0, 3)}
    (folder / "metrics.json").write_text(json.dumps({**metrics, "timings": {}}))
    (part,) = _parts(run)
    assert (part.images_inferred, part.wall_s, part.timings) == (0, 2.0, {})


def test_the_parts_of_a_shard_are_its_inference_entries(tmp_path, tiny_coco):
    folder = write_run_folder(
        tmp_path / "s1",
        tiny_coco,
        TINY_GT,
        shard="1/2",
        history=[("run", 2, 1.0), ("score", 0, 0.0), ("resume", 1, 0.5)],
    )
    history = (folder / "history.jsonl").read_text().splitlines()
    old = json.loads(history[0])
    old["folder"] = ""  # an entry of an older ssd_eval names no folder: the shard's own name is given
    (folder / "history.jsonl").write_text("\n".join([json.dumps(old), *history[1:]]) + "\n")
    (run,) = _read_shards([folder], backend=None, data=None)
    assert [(p.verb, p.folder, p.images_inferred) for p in _parts(run)] == [
        ("run", "s1", 2),
        ("resume", "s1", 1),
    ]


def test_the_default_output_drops_the_shard_suffix():
    assert default_output([Path("/r/cpu-shard2of12"), Path("/o/x")]) == Path("/r/cpu-merged")
    assert default_output([Path("/r/a-shard1of2-b")]) == Path("/r/a-b-merged")
    assert default_output([Path("/r/shard1of2")]) == Path("/r/shard1of2-merged")
    assert default_output([Path("/r/a-shardXof2")]) == Path("/r/a-shardXof2-merged")


def test_write_merge_is_what_merge_runs_does_under_the_lock(tmp_path, tiny_coco):
    folders = shards(tmp_path, tiny_coco)
    plan = plan_merge(folders, tmp_path / "m")
    result = write_merge(plan, ["ssd-eval", "merge"])
    assert result.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert read_history(tmp_path / "m")[-1].command == ("ssd-eval", "merge")


def test_shards_of_a_limit_or_an_id_list_merge_to_their_whole(tmp_path, tiny_coco):
    limited = shards(tmp_path / "limit", tiny_coco, dataset={"root": str(tiny_coco), "limit": 4})
    result = merge_runs(limited, tmp_path / "m-limit")
    assert result.identity.images.image_ids == (1, 2, 5, 7) and result.identity.images.limit == 4
    assert [d["image_id"] for d in lines(tmp_path / "m-limit" / "detections.jsonl")] == [1, 2, 5, 7]
    ids = tmp_path / "ids.txt"
    ids.write_text("9\n7\n2\n1\n")
    listed = shards(tmp_path / "list", tiny_coco, dataset={"root": str(tiny_coco), "image_ids": str(ids)})
    ids.unlink()  # the list is not on the merging machine: the shards' identities have the ids
    result = merge_runs(listed, tmp_path / "m-list")
    assert result.identity.images.image_ids == (1, 2, 7, 9)
    assert result.identity.images.id_list_sha256 is not None
    assert [d["image_id"] for d in lines(tmp_path / "m-list" / "detections.jsonl")] == [1, 2, 7, 9]
    everything = shards(tmp_path / "all", tiny_coco, dataset={"root": str(tiny_coco), "selection": "all"})
    result = merge_runs(everything, tmp_path / "m-all")
    assert result.identity.images.image_ids == (1, 2, 5, 7, 9, 11)


def test_skipped_images_of_every_shard_in_id_order(tmp_path, tiny_coco):
    folders = shards(tmp_path, tiny_coco, skipped={9: "truncated", 2: "not an image"})
    result = merge_runs(folders, tmp_path / "m")
    assert [s["image_id"] for s in lines(tmp_path / "m" / "skipped.jsonl")] == [2, 9]
    assert [s.image_id for s in result.skipped_images] == [2, 9]
    assert [d["image_id"] for d in lines(tmp_path / "m" / "detections.jsonl")] == [1, 5, 7]


def test_a_merge_against_other_annotations_is_refused(tmp_path, tiny_coco):
    from conftest import TINY_IMAGES
    from helpers import Det, make_coco

    first, second = shards(tmp_path, tiny_coco)
    other = make_coco(tmp_path / "other", TINY_IMAGES, {**TINY_GT, 9: [Det(1, 1, 5, 5, 1)]})
    with pytest.raises(OutputError) as info:
        merge_runs([first, second], tmp_path / "m", data=other)
    line = str(info.value)
    assert line.startswith(f"{first}: ground truth is annotations with content sha256 ")
    assert line.endswith(
        f" in {other / 'annotations' / 'instances_val2017.json'}: score it against the annotations it was "
        "made with (--data the COCO root it used, or an identical copy)"
    )


def test_the_merge_records_the_runs_own_scorer_in_its_identity(tmp_path, tiny_coco):
    for name, identity in (("new", True), ("old", False)):
        folders = shards(tmp_path / name, tiny_coco, identity=identity)
        result = merge_runs(folders, tmp_path / f"m-{name}", backend="numpy")
        assert result.identity.scorer == "pycocotools"  # what the run was made with; numpy scored it now
        recorded = json.loads((tmp_path / f"m-{name}" / "identity.json").read_text())
        assert recorded["scorer"] == "pycocotools"
        assert json.loads((tmp_path / f"m-{name}" / "metrics.json").read_text())["config"]["scoring"] == {
            "backend": "numpy"
        }
