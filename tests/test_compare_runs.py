"""Comparisons of run folders from anywhere: the same report as one process, resumable, refusals.

"Another machine" is a second Python process (`python -m ssd_eval run ...`) with another model; its run
folder is compared with the reference's by `ssd-eval compare RUN_DIR RUN_DIR`, and the report must be
the one a one-process comparison of the same sessions writes. What may differ between the two is
only what says where and when they ran (folders, wall time, latency), which the tests mask.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TINY_GT
from helpers import Det, save_table_detector, write_config

from ssd_eval.cli import main
from ssd_eval.config.compare import CompareSettings, PicturesConfig
from ssd_eval.errors import ConfigError
from ssd_eval.pipeline.session import ProviderSession
from ssd_eval.reports.results import machine_info, package_versions

REPO = Path(__file__).resolve().parents[1]

# Against a reference emitting the ground truth (score 0.9): image 1's person 3 px right at score 0.8,
# image 2's person missed, image 7 gets an extra toothbrush at 0.5 (see test_compare for the counts).
PERTURBED = {
    1: [Det(7, 4, 30, 30, 1, 0.8), Det(30, 10, 20, 30, 18)],
    2: [],
    5: TINY_GT[5],
    7: [Det(5, 5, 20, 20, 90), Det(30, 30, 8, 8, 90, 0.5)],
    9: TINY_GT[9],
}


@pytest.fixture
def setup(tmp_path, tiny_coco):
    perfect = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    perturbed = save_table_detector(tmp_path / "perturbed.onnx", tiny_coco, PERTURBED)
    data = {
        "model": {"path": str(perfect)},
        "reference": {"name": "ref", "provider": {"name": "cpu"}},
        "runs": [{"name": "perturbed", "provider": {"name": "cpu"}, "model": {"path": str(perturbed)}}],
        "dataset": {"root": str(tiny_coco)},
        "output": {"dir": str(tmp_path / "results")},
        "gate": {"max_ap_drop": 0.5, "max_class_ap_drop": 0.2},
        "pictures": {"pr_curves": False, "disagreements": 2},
    }
    config = tmp_path / "cmp.yaml"
    config.write_text(yaml.safe_dump(data))
    return tiny_coco, perfect, perturbed, config


def _report(folder: Path) -> dict:
    """A comparison's metrics.json without what says where and when it ran."""
    data = json.loads((folder / "metrics.json").read_text())
    for key in ("out_dir", "wall_s", "versions", "machine", "provenance"):
        data.pop(key)
    for run in data["runs"]:
        for key in ("run_dir", "latency", "versions", "machine", "wall_s"):
            run.pop(key)
    return data


def _summary(folder: Path) -> str:
    """summary.md with the latency columns, warm-up line, wall time and provenance (command, times) masked."""
    text = (folder / "summary.md").read_text()
    text = re.sub(r"\| [\d.]+ \| [\d.]+ \|\n", "| t | t |\n", text)
    text = re.sub(r"\n`ssd-eval compare .*\n", "\n", text)
    return re.sub(r"First inference.*\n", "", text)


def _subprocess_run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "ssd_eval", "run", *args, "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_folders_from_two_processes_compare_like_one_process(tmp_path, setup, capsys):
    root, perfect, perturbed, cmp = setup
    # One process: both sessions over the same images. The per-class rule fails (person drops 0.32).
    assert main(["compare", "--config", str(cmp), "--run-name", "onego"]) == 1
    onego = tmp_path / "results" / "onego"
    # Every session wrote an ordinary run folder.
    for name in ("ref", "perturbed"):
        run = onego / "runs" / name
        assert {"config.yaml", "run_info.json", "detections.jsonl", "metrics.json"} <= {
            p.name for p in run.iterdir()
        }
    # Machine 1: the reference, run in this process; machine 2: the perturbed model in another process.
    run_config = write_config(tmp_path / "run.yaml", perfect, root)
    assert (
        main(["run", "--config", str(run_config), "--output", str(tmp_path / "m1"), "--run-name", "ref"]) == 0
    )
    done = _subprocess_run(
        "--config", str(run_config), "--model", str(perturbed),
        "--output", str(tmp_path / "m2"), "--run-name", "perturbed",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    capsys.readouterr()
    folders = [str(tmp_path / "m1" / "ref"), str(tmp_path / "m2" / "perturbed")]
    assert main(["compare", *folders, "--config", str(cmp), "--run-name", "apart"]) == 1
    out = capsys.readouterr().out
    apart = tmp_path / "results" / "apart"
    assert _report(apart) == _report(onego)
    assert _summary(apart) == _summary(onego)
    # The numbers themselves (hand counts, see PERTURBED): 7 reference and 7 run detections; matched:
    # image 1 both, 5 both, 7 the toothbrush, 9 the person = 6; missing: image 2's person; extra: the
    # second toothbrush. Full agreement on images 1 (all matched, shifted), 5 and 9.
    report = json.loads((apart / "metrics.json").read_text())
    ref, run = report["runs"]
    assert ref["name"] == "ref" and run["name"] == "perturbed"
    a = run["agreement"]
    assert (a["reference_detections"], a["run_detections"], a["matched"], a["missing"], a["extra"]) == (
        7,
        7,
        6,
        1,
        1,
    )
    assert a["images_full_agreement"] == 3
    # person AP (4 gt; run: 0.9 image 5, 0.9 image 9, 0.8 image 1 at IoU 810/990): recall 3/4 at
    # precision 1 (76 of 101 recall points) at the 7 IoU thresholds <= 0.80, 2/4 (51 points) above.
    person = (7 * 76 + 3 * 51) / 1010
    assert run["deltas"]["AP"] == pytest.approx((person + 1 + 1) / 3 - 1, abs=1e-12)
    gate = {g["rule"]: g["state"] for g in report["gate"]["rules"]}
    assert gate == {
        "AP drop vs reference ref <= 0.5000": "passed",
        "per-class AP drop vs reference ref <= 0.2000": "failed",
    }
    assert report["gate"]["verdict"] == "FAIL"
    # Worst first: image 2 (the missed person, 0.9), image 7 (the extra toothbrush, 0.5); image 1's
    # 0.1 score shift is no real disagreement.
    assert [i for i, _ in run["worst_images"]] == [2, 7]
    assert report["pictures"]["disagreements"]["perturbed"] == [
        "disagreements/perturbed/01-2.jpg",
        "disagreements/perturbed/02-7.jpg",
    ]
    assert all((apart / f).is_file() for f in report["pictures"]["disagreements"]["perturbed"])
    assert run["model"]["path"] == str(perturbed) and ref["model"]["path"] == str(perfect)
    assert run["providers_used"] == ["CPUExecutionProvider"]
    assert run["versions"]["python"] and run["run_dir"] == folders[1]
    assert "| perturbed | none | onnxruntime " in (apart / "summary.md").read_text()
    assert "gate PASS: perturbed: AP 0.8927 vs reference ref 1.0000" in out
    # The one-process comparison's own run folders compare to the same report again.
    runs = [str(onego / "runs" / "ref"), str(onego / "runs" / "perturbed")]
    assert main(["compare", *runs, "--config", str(cmp), "--run-name", "again"]) == 1
    assert _report(tmp_path / "results" / "again") == _report(onego)
    # --reference picks another folder as the reference: the deltas flip sign.
    assert (
        main(
            [
                "compare",
                *folders,
                "--reference",
                "perturbed",
                "--run-name",
                "flip",
                "--output",
                str(tmp_path / "results"),
            ]
        )
        == 0
    )
    flipped = json.loads((tmp_path / "results" / "flip" / "metrics.json").read_text())
    assert flipped["reference"] == "perturbed" and flipped["runs"][1]["name"] == "ref"
    assert flipped["runs"][1]["deltas"]["AP"] == pytest.approx(-run["deltas"]["AP"], abs=1e-12)


def test_interrupted_comparison_resumes_identical(tmp_path, setup, monkeypatch, capsys):
    _, _, _, cmp = setup
    assert main(["compare", "--config", str(cmp), "--run-name", "whole", "--quiet"]) == 1  # person drops
    whole = tmp_path / "results" / "whole"
    # 5 images x 2 sessions; Ctrl-C at the 6th inference, in the middle of image 3: the reference has
    # it, the run not yet.
    original = ProviderSession.infer
    calls = []

    def interrupted(session, tensor):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return original(session, tensor)

    monkeypatch.setattr(ProviderSession, "infer", interrupted)
    capsys.readouterr()
    assert main(["compare", "--config", str(cmp), "--run-name", "cut", "--quiet"]) == 130
    folder = tmp_path / "results" / "cut"
    lines = [
        len((folder / "runs" / n / "detections.jsonl").read_text().splitlines()) for n in ("ref", "perturbed")
    ]
    assert lines == [3, 2]
    assert not (folder / "metrics.json").exists()
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"all written so far is kept: continue with --resume {folder}")
    )
    monkeypatch.setattr(ProviderSession, "infer", original)
    capsys.readouterr()
    assert main(["compare", "--resume", str(folder), "--quiet"]) == 1
    assert _report(folder) == _report(whole)
    assert _summary(folder) == _summary(whole)
    for name in ("ref", "perturbed"):
        resumed = (folder / "runs" / name / "detections.jsonl").read_bytes()
        assert resumed == (whole / "runs" / name / "detections.jsonl").read_bytes()


def test_shards_of_a_comparison_merge_and_compare_like_the_whole(tmp_path, setup):
    _, _, _, cmp = setup
    assert main(["compare", "--config", str(cmp), "--run-name", "whole", "--quiet"]) == 1
    # Shards take every 2nd image by id: 1/2 = images 1, 5, 9 (person AP drops 0.1, within the 0.2
    # per-class allowance); 2/2 = images 2, 7 (the only person is missed: AP 0, fails).
    codes = [
        main(["compare", "--config", str(cmp), "--shard", f"{k}/2", "--run-name", f"s{k}", "--quiet"])
        for k in (1, 2)
    ]
    assert codes == [0, 1]
    results = tmp_path / "results"
    for name in ("ref", "perturbed"):
        shards = [str(results / f"s{k}" / "runs" / name) for k in (1, 2)]
        assert main(["merge", *shards, "--output", str(tmp_path / "merged" / name)]) == 0
    merged = [str(tmp_path / "merged" / n) for n in ("ref", "perturbed")]
    assert main(["compare", *merged, "--config", str(cmp), "--run-name", "merged", "--quiet"]) == 1
    assert _report(results / "merged") == _report(results / "whole")


def test_runs_that_cannot_be_compared_are_refused_with_one_line(tmp_path, setup, capsys):
    root, perfect, perturbed, _ = setup
    run_config = write_config(tmp_path / "run.yaml", perfect, root)
    out = str(tmp_path / "runs")
    assert main(["run", "--config", str(run_config), "--output", out, "--run-name", "all5", "--quiet"]) == 0
    limited = ["--output", out, "--run-name", "first3", "--limit", "3", "--quiet"]
    assert main(["run", "--config", str(run_config), *limited]) == 0
    clipped = write_config(tmp_path / "clip.yaml", perturbed, root, decode={"clip_boxes": True})
    assert main(["run", "--config", str(clipped), "--output", out, "--run-name", "clipped", "--quiet"]) == 0
    capsys.readouterr()
    cases = [
        (["first3"], "first3 but null in the reference"),
        (["clipped"], "decode.clip_boxes is true in"),
        (["nothing"], "is not a run folder"),
    ]
    for other, message in cases:
        folders = [str(tmp_path / "runs" / "all5"), *(str(tmp_path / "runs" / o) for o in other)]
        assert main(["compare", *folders, "--output", out, "--run-name", "x", "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ssd-eval: error: ") and message in err[0], err
    # An unfinished run (no metrics.json yet) names how to finish it.
    (tmp_path / "runs" / "first3" / "metrics.json").unlink()
    assert (
        main(["compare", str(tmp_path / "runs" / "all5"), str(tmp_path / "runs" / "first3"), "--quiet"]) == 2
    )
    assert "the run has not finished; finish it with `ssd-eval run --resume" in capsys.readouterr().err
    # A different model file is what comparisons are for: allowed, and named in the report.
    other = write_config(tmp_path / "other.yaml", perturbed, root)
    assert main(["run", "--config", str(other), "--output", out, "--run-name", "other", "--quiet"]) == 0
    folders = [str(tmp_path / "runs" / "all5"), str(tmp_path / "runs" / "other")]
    assert main(["compare", *folders, "--output", out, "--run-name", "ok", "--quiet"]) == 0
    assert "perturbed.onnx" in (tmp_path / "runs" / "ok" / "summary.md").read_text()


def test_provider_selects_the_side_run_here_and_the_other_machine_fills_in(tmp_path, setup, capsys):
    root, _, perturbed, cmp = setup
    data = yaml.safe_load(cmp.read_text())
    data["runs"] = [{"name": "gpu", "provider": {"name": "cuda"}, "model": {"path": str(perturbed)}}]
    cmp.write_text(yaml.safe_dump(data))
    # Here only the CPU side runs; CUDA is not even tried (it is not available in this environment).
    assert main(["compare", "--config", str(cmp), "--provider", "cpu", "--run-name", "two"]) == 0
    folder = tmp_path / "results" / "two"
    out = capsys.readouterr().out
    assert "finished   ref" in out and "waiting    gpu" in out
    assert (folder / "runs" / "ref" / "metrics.json").is_file() and not (folder / "metrics.json").exists()
    # The GPU machine's run folder arrives (here: made by another process, on CPU, with the run's model).
    run_config = write_config(tmp_path / "run.yaml", perturbed, root)
    done = _subprocess_run("--config", str(run_config), "--output", str(folder / "runs"), "--run-name", "gpu")
    assert done.returncode == 0, done.stderr
    # Continuing the comparison runs nothing new (the reference is finished) and writes the report.
    assert main(["compare", "--resume", str(folder), "--provider", "cpu"]) == 1  # person drops
    report = json.loads((folder / "metrics.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["ref", "gpu"]
    assert report["runs"][1]["agreement"]["missing"] == 1 and report["runs"][1]["agreement"]["extra"] == 1
    assert main(["compare", "--config", str(cmp), "--provider", "dml", "--run-name", "x"]) == 2
    assert (
        "--provider dml matches none of the comparison's runs: ref (cpu), gpu (cuda)"
        in capsys.readouterr().err
    )


def test_a_run_warning_reaches_the_comparison(tmp_path, setup, capsys):
    """A run with more than the card's 200 detections on an image says so in the comparison too."""
    root, perfect, _, _ = setup
    # Image 1: its 2 true boxes and 199 far-off low-score boxes, 201 detections in all.
    many = save_table_detector(
        tmp_path / "many.onnx", root, {**TINY_GT, 1: [*TINY_GT[1], *[Det(0, 0, 1, 1, 90, 0.06)] * 199]}
    )
    out = str(tmp_path / "runs")
    for name, model in (("ref", perfect), ("many", many)):
        config = write_config(tmp_path / f"{name}.yaml", model, root)
        assert main(["run", "--config", str(config), "--output", out, "--run-name", name, "--quiet"]) == 0
    folders = [str(tmp_path / "runs" / "ref"), str(tmp_path / "runs" / "many")]
    assert main(["compare", *folders, "--output", out, "--run-name", "cmp", "--quiet"]) == 0
    expected = "1 image(s) got more than the model card's 200 detections (most: 201 on image 1)"
    report = json.loads((tmp_path / "runs" / "cmp" / "metrics.json").read_text())
    warnings = {run["name"]: run["warnings"] for run in report["runs"]}
    assert warnings["ref"] == [] and len(warnings["many"]) == 1 and warnings["many"][0].startswith(expected)
    assert f"- **many warning**: {expected}" in (tmp_path / "runs" / "cmp" / "summary.md").read_text()


# --- compare_runs on run folders written by hand (no model), piece by piece -------------------------

# Against the ground truth at 0.9: image 1's person 3 px right at 0.8 (IoU 810/990, a match), image 2's
# person missed, image 7's toothbrush joined by a second one at 0.5 and image 9's person moved by 25 px
# (IoU 600/2600: no match at 0.5).
HAND = {
    **TINY_GT,
    1: [Det(7, 4, 30, 30, 1, 0.8), TINY_GT[1][1]],
    2: [],
    7: [*TINY_GT[7], Det(30, 30, 8, 8, 90, 0.5)],
    9: [Det(45, 10, 40, 40, 1)],
}
SETTINGS = CompareSettings(pictures=PicturesConfig(pr_curves=False, disagreements=0))


def _finished(tmp_path: Path, root: Path, name: str, detections, **kwargs) -> Path:
    from helpers import write_run_folder

    from ssd_eval.engine.rescore import rescore_run

    folder = write_run_folder(tmp_path / "runs" / name, root, detections, **kwargs)
    rescore_run(folder)
    return folder


def test_a_finished_run_is_read_back_scored_from_its_log(tmp_path, tiny_coco, caplog):
    from ssd_eval.engine.compare_runs import load_finished_run

    folder = _finished(tmp_path, tiny_coco, "ref", TINY_GT, skipped={11: "bad"},
                       dataset={"root": str(tiny_coco), "selection": "all"})  # fmt: skip
    run = load_finished_run(folder)
    assert (run.name, run.folder, run.warnings) == ("ref", folder, ())
    assert run.result.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert run.result.num_detections == 7
    assert [s.image_id for s in run.result.skipped_images] == [11]
    assert sorted(run.detections) == [1, 2, 5, 7, 9]
    assert run.gt.image_ids == [1, 2, 5, 7, 9, 11]
    assert not caplog.records


def test_a_metrics_json_that_disagrees_with_the_log_is_named(tmp_path, tiny_coco, caplog):
    from ssd_eval.engine.compare_runs import load_finished_run

    folder = _finished(tmp_path, tiny_coco, "ref", TINY_GT)
    metrics = folder / "metrics.json"
    recorded = json.loads(metrics.read_text())
    recorded["stats"]["AP"] = 1.0 - 1e-10  # within the scorers' own disagreement: the same numbers
    metrics.write_text(json.dumps(recorded))
    assert load_finished_run(folder).warnings == ()
    recorded["stats"]["AP"] = 0.25
    metrics.write_text(json.dumps(recorded))
    run = load_finished_run(folder)
    line = (
        f"{metrics} disagrees with its detection log (AP 0.2500 recorded, AP 1.0000 from the log): the "
        f"comparison uses the log; re-score the run with `ssd-eval score {folder}`"
    )
    assert run.warnings == (line,)
    assert run.result.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert [r.getMessage() for r in caplog.records] == [line]
    del recorded["stats"]["AP"]  # a stat missing: another set of numbers
    metrics.write_text(json.dumps(recorded))
    assert load_finished_run(folder).warnings == (
        f"{metrics} disagrees with its detection log (its stats recorded, AP 1.0000 from the log): the "
        f"comparison uses the log; re-score the run with `ssd-eval score {folder}`",
    )
    recorded["stats"] = {**json.loads(json.dumps(load_finished_run(folder).result.stats)), "AP": 1.0, "X": 1}
    metrics.write_text(json.dumps(recorded))
    assert len(load_finished_run(folder).warnings) == 1  # an extra stat too


def test_folders_that_are_no_finished_run_are_refused(tmp_path, tiny_coco):
    from helpers import write_run_folder

    from ssd_eval.engine.compare_runs import load_finished_run
    from ssd_eval.errors import ComparisonError, OutputError

    with pytest.raises(ComparisonError) as info:
        load_finished_run(tmp_path / "nothing")
    assert str(info.value) == f"{tmp_path / 'nothing'} is not a run folder (no such folder)"
    with pytest.raises(OutputError) as info:
        load_finished_run(tmp_path)
    assert str(info.value) == f"{tmp_path} is not a run folder: it has no config.yaml"
    folder = write_run_folder(tmp_path / "unfinished", tiny_coco, TINY_GT)
    with pytest.raises(ComparisonError) as info:
        load_finished_run(folder)
    assert str(info.value) == (
        f"{folder} has no metrics.json: the run has not finished; finish it with `ssd-eval run --resume "
        f"{folder}` (if its log already holds every image, `ssd-eval score {folder}` is enough)"
    )
    for damaged in ({"stats": {}}, {**json.loads("{}"), "run_dir": 3}):
        (folder / "metrics.json").write_text(json.dumps(damaged))
        with pytest.raises(OutputError) as info:
            load_finished_run(folder)
        assert str(info.value) == (
            f"{folder / 'metrics.json'} is damaged; rescore the run with `ssd-eval score {folder}`"
        )
    (folder / "metrics.json").write_text("{")
    with pytest.raises(ConfigError) as info:
        load_finished_run(folder)
    assert str(info.value).endswith(f"; rescore the run with `ssd-eval score {folder}`")


def _compare(folders, output, **kwargs):
    from ssd_eval.engine.compare_runs import compare_runs

    return compare_runs(folders, output, settings=kwargs.pop("settings", SETTINGS), **kwargs)


def test_runs_of_other_images_are_refused_naming_both(tmp_path, tiny_coco):
    from ssd_eval.errors import ComparisonError

    ref = _finished(tmp_path, tiny_coco, "ref", TINY_GT)
    few = _finished(tmp_path, tiny_coco, "few", TINY_GT, dataset={"root": str(tiny_coco), "limit": 2})
    with pytest.raises(ComparisonError) as info:
        _compare([ref, few], tmp_path / "cmp")
    assert str(info.value) == (
        f"cannot compare {few} with {ref}: dataset.limit is 2 in {few} but null in the reference {ref}; "
        "compare runs of the same images and ground truth (finish a run with `ssd-eval run --resume`, or "
        "point --data at the COCO root it used)"
    )
    assert not (tmp_path / "cmp").exists()


def test_names_order_and_count_of_the_runs(tmp_path, tiny_coco):
    from ssd_eval.errors import ComparisonError

    ref = _finished(tmp_path, tiny_coco, "ref", TINY_GT)
    hand = _finished(tmp_path, tiny_coco, "hand", HAND)
    with pytest.raises(ComparisonError) as info:
        _compare([ref], tmp_path / "cmp")
    assert str(info.value) == "give at least two run folders: the reference and a run to compare with it"
    with pytest.raises(ComparisonError) as info:
        _compare([ref, hand], tmp_path / "cmp", reference="gpu")
    assert str(info.value) == "--reference 'gpu' is none of the compared runs (ref, hand)"
    twin = _finished(tmp_path / "elsewhere", tiny_coco, "ref", TINY_GT)
    with pytest.raises(ComparisonError) as info:
        _compare([ref, hand, twin], tmp_path / "cmp")
    assert str(info.value) == (
        f"two runs are named 'ref' ({ref} and {twin}): a run is named by its folder, so rename one folder"
    )
    flipped = _compare([ref, hand], tmp_path / "flip", reference="hand")
    assert [r.name for r in flipped.runs] == ["hand", "ref"] and flipped.reference == "hand"
    third = _compare(
        [hand, ref, twin.rename(tmp_path / "runs" / "ref2")], tmp_path / "three", reference="ref"
    )
    assert [r.name for r in third.runs] == ["ref", "hand", "ref2"]


def test_a_comparison_by_hand_count(tmp_path, tiny_coco, monkeypatch):
    from ssd_eval.engine import compare_runs as module

    ref = _finished(tmp_path, tiny_coco, "ref", TINY_GT, skipped={11: "x"},
                    dataset={"root": str(tiny_coco), "selection": "all"})  # fmt: skip
    everything = {"root": str(tiny_coco), "selection": "all"}
    hand = _finished(tmp_path, tiny_coco, "hand", HAND, skipped={5: "truncated"}, dataset=everything)
    clock = iter([100.0, 102.5004])  # the comparison's wall time, to the millisecond
    monkeypatch.setattr(module.time, "perf_counter", lambda: next(clock))
    result = _compare([ref, hand], tmp_path / "cmp" / "nested", notes={"hand": "by hand"})
    assert result.wall_s == 2.5
    # Where the comparison itself ran (each run's own record is carried in its report).
    assert result.versions == package_versions() and result.machine == machine_info()
    assert (result.out_dir, result.reference, result.iou_threshold) == (
        str(tmp_path / "cmp" / "nested"),
        "ref",
        0.5,
    )
    assert result.identity is not None and result.identity.images.image_ids == (1, 2, 5, 7, 9, 11)
    assert result.protocol.num_images == 6 and result.settings["pictures"]["disagreements"] == 0
    reference, run = result.runs
    assert (reference.name, reference.note, reference.agreement, reference.worst_images) == (
        "ref",
        "",
        None,
        (),
    )
    assert (run.name, run.note, run.status, run.run_dir) == ("hand", "by hand", "ran", str(hand))
    assert run.provider == "cpu" and run.provider_options == {}
    assert run.providers_used == ("CPUExecutionProvider",) and run.input_size == (32, 32)
    # Images skipped by either side are not matched (5, 11); on 1 2 7 9: reference 2 + 1 + 1 + 1
    # detections, run 2 + 0 + 2 + 1; matched 2 + 0 + 1 + 0.
    a = run.agreement
    assert a is not None
    assert (a.images, a.reference_detections, a.run_detections, a.matched, a.missing, a.extra) == (
        4,
        5,
        5,
        3,
        2,
        2,
    )
    # Worst first: image 9 (0.9 missing + 0.9 extra), 2 (0.9 missing), 7 (0.5 extra); image 1 is matched
    # (its person only 0.1 lower): no visible disagreement.
    assert run.worst_images == ((9, 1.8), (2, 0.9), (7, 0.5))
    # The matched pairs: image 1's two, image 7's toothbrush. Image 1's person: 3 px of its 64 px width.
    assert a.raw_boxes.count == 12 and a.raw_boxes.abs_max == pytest.approx(3 / 64, abs=1e-12)
    assert a.score_diff_max == pytest.approx(0.1, abs=1e-12) and a.box_diff_px_max == pytest.approx(3.0)
    assert [s.image_id for s in result.skipped_images] == [5, 11]  # both sides' skipped images
    # The run's AP: person 4 gt (image 5's counts, skipped); the moved one on 9 (0.9, a false positive)
    # ranks before image 1's (0.8, a hit at the 7 IoU thresholds up to 0.80): precision 1/2 over 26 of 101
    # recall points at those, nothing above; dog 2 gt, image 1's found: 51 points; toothbrush 1.0.
    person = 7 * 13 / 1010
    ap = (person + 51 / 101 + 1.0) / 3
    assert run.stats["AP"] == pytest.approx(ap, abs=1e-12)
    assert run.deltas["AP"] == pytest.approx(ap - 1.0, abs=1e-12)
    assert math.isnan(run.deltas["APl"])  # no large object: -1 on both sides, no delta
    assert reference.deltas["AP"] == 0.0
    assert [d.name for d in run.category_deltas] == ["person", "dog", "toothbrush"]
    assert [d.delta for d in run.category_deltas] == pytest.approx([person - 1, 51 / 101 - 1, 0], abs=1e-12)
    # What the run recorded of itself is carried as it was.
    metrics = json.loads((hand / "metrics.json").read_text())
    assert (run.versions, run.machine, run.wall_s) == (metrics["versions"], metrics["machine"], 0.0)
    assert run.model is not None and run.model.sha256 == "a" * 64 and run.preprocess == "pillow"
    assert run.num_detections == 5 and reference.num_detections == 7  # 2 + 0 + 2 + 1 (5 skipped)
    assert [c.name for c in run.per_category if c.ap is not None] == ["person", "dog", "toothbrush"]
    assert run.provider_options_used == ({},)
    assert (
        json.loads((tmp_path / "cmp" / "nested" / "metrics.json").read_text())["runs"][1]["deltas"]["APl"]
        is None
    )


def test_worst_images_are_cut_at_ten_and_rounded(tmp_path, tiny_coco):
    from helpers import TinyImage, make_coco

    images = [TinyImage(100 + i, 40, 40) for i in range(12)]
    gt = {im.image_id: [Det(2, 2, 10, 10, 1)] for im in images}
    root = make_coco(tmp_path / "coco", images, gt)
    # Image 100 + i: the run misses the object (score 0.9) and adds one elsewhere at 0.1 + i/300.
    run = {im.image_id: [Det(25, 25, 10, 10, 1, 0.1 + i / 300)] for i, im in enumerate(images)}
    ref = _finished(tmp_path, root, "ref", gt)
    other = _finished(tmp_path, root, "other", run)
    settings = CompareSettings(pictures=PicturesConfig(pr_curves=False, disagreements=0, min_score=0.05))
    (_, report) = _compare([ref, other], tmp_path / "cmp", settings=settings).runs
    assert [i for i, _ in report.worst_images] == list(range(111, 101, -1))
    assert report.worst_images[0] == (111, round(0.9 + 0.1 + 11 / 300, 6))
    assert all(d == round(d, 6) for _, d in report.worst_images)


def test_an_existing_comparison_folder_is_replaced_only_on_purpose(tmp_path, tiny_coco):
    from ssd_eval.errors import OutputError

    ref = _finished(tmp_path, tiny_coco, "ref", TINY_GT)
    hand = _finished(tmp_path, tiny_coco, "hand", HAND)
    out = tmp_path / "cmp"
    (out / "runs").mkdir(parents=True)
    (out / "run.lock").write_text("")
    _compare([ref, hand], out)  # a comparison folder's own runs/ and lock are no earlier comparison
    with pytest.raises(OutputError) as info:
        _compare([ref, hand], out)
    assert str(info.value) == (
        f"comparison folder {out} already exists: choose another --run-name or --output (or set "
        "output.overwrite: true)"
    )
    _compare([ref, hand], out, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot be created"):
        _compare([ref, hand], tmp_path / "file" / "cmp")


def test_latency_is_the_steady_inference_the_first_and_decoding(tmp_path, tiny_coco):
    ref = _finished(tmp_path, tiny_coco, "ref", TINY_GT)
    metrics = json.loads((ref / "metrics.json").read_text())
    timing = {"total_s": 1.0, "mean_ms": 1.0, "median_ms": 1.0, "p90_ms": 1.0, "count": 4}
    metrics["timings"] = {
        "infer": {**timing, "count": 5},
        "infer_steady": timing,
        "infer_first": {**timing, "count": 1},
        "decode": {**timing, "count": 3},
        "read": timing,
    }
    (ref / "metrics.json").write_text(json.dumps(metrics))
    hand = _finished(tmp_path, tiny_coco, "hand", HAND)
    reference, run = _compare([ref, hand], tmp_path / "cmp").runs
    assert {k: v.count for k, v in reference.latency.items()} == {"infer": 4, "infer_first": 1, "decode": 3}
    assert run.latency == {}


def test_an_imported_run_says_where_its_detections_came_from(tmp_path, tiny_coco):
    from ssd_eval.engine.run_folder import read_identity, write_identity
    from ssd_eval.evaluation.identity import DetectionSource

    ref = _finished(tmp_path, tiny_coco, "ref", TINY_GT)
    hand = _finished(tmp_path, tiny_coco, "hand", HAND)
    source = DetectionSource("coco-results", "dets.json", "0123456789abcdef" * 4, "TensorRT 8.6", None, False,
                             0, 0, False)  # fmt: skip
    identity = read_identity(hand)
    assert identity is not None
    (hand / "identity.json").unlink()
    write_identity(hand, dataclasses.replace(identity, source=source))
    _, run = _compare([ref, hand], tmp_path / "cmp").runs
    assert run.note == "imported: COCO results file dets.json (sha256 0123456789ab…) from TensorRT 8.6"
    _, run = _compare([ref, hand], tmp_path / "cmp2", notes={"hand": "mine"}).runs
    assert run.note == "mine"


def test_category_deltas_worst_first():
    from ssd_eval.engine.compare_runs import category_deltas
    from ssd_eval.evaluation.scoring import CategoryScore

    def cat(cid: int, ap: float | None, name: str = "c") -> CategoryScore:
        return CategoryScore(cid, f"{name}{cid}", ap, ap, 3, 4)

    reference = [cat(1, 0.5), cat(2, 0.9), cat(3, None), cat(4, 0.2), cat(5, 0.7)]
    run = [cat(1, 0.4), cat(2, 0.8), cat(3, 0.5), cat(4, None), cat(5, 0.9), cat(6, 0.1)]
    deltas = category_deltas(run, reference)
    assert [(d.category_id, d.name, d.num_gt, d.reference_ap, d.ap) for d in deltas] == [
        (1, "c1", 3, 0.5, 0.4),  # -0.1 (up to float rounding: ties broken by id)
        (2, "c2", 3, 0.9, 0.8),
        (5, "c5", 3, 0.7, 0.9),
    ]
    assert [d.delta for d in deltas] == [0.4 - 0.5, 0.8 - 0.9, 0.9 - 0.7]
    tie = category_deltas([cat(7, 0.5), cat(2, 0.5)], [cat(2, 0.6), cat(7, 0.6)])
    assert [d.category_id for d in tie] == [2, 7]


def test_json_has_no_infinity():
    from ssd_eval.engine.compare_runs import _finite

    value = {"a": float("inf"), "b": [1.0, float("-inf"), (float("nan"), 2)], "c": "inf", "d": 3}
    assert _finite(value) == {"a": None, "b": [1.0, None, [None, 2]], "c": "inf", "d": 3}


def test_pr_curves_of_every_run_on_one_plot_or_why_not(tmp_path, tiny_coco, monkeypatch, caplog):
    from ssd_eval.reports import plots

    ref = _finished(tmp_path, tiny_coco, "ref", TINY_GT)
    hand = _finished(tmp_path, tiny_coco, "hand", HAND)
    curves = CompareSettings(pictures=PicturesConfig(pr_curves=True, disagreements=0))
    drawn = []
    monkeypatch.setattr(plots, "plot_pr_curves", lambda c, path, **kw: drawn.append((sorted(c), path, kw)))
    result = _compare([ref, hand], tmp_path / "cmp", settings=curves)
    assert result.pictures == {"pr_curves": "pr_curves.png", "pr_curves_note": ""}
    assert drawn == [
        (
            ["hand", "ref"],
            tmp_path / "cmp" / "pr_curves.png",
            {"title": "5 images, reference ref", "scale": "linear"},
        )
    ]
    nothing = _finished(tmp_path, tiny_coco, "nothing", {})
    empty = _finished(tmp_path, tiny_coco, "empty", {})
    result = _compare([nothing, empty], tmp_path / "cmp2", settings=curves)
    assert result.pictures["pr_curves"] is None
    assert result.pictures["pr_curves_absent"] == (
        "no detection matches a ground-truth box at IoU 0.50 or above: precision is 0 at every recall"
    )
    monkeypatch.setattr(plots, "matplotlib_available", lambda: False)
    result = _compare([ref, hand], tmp_path / "cmp3", settings=curves)
    assert result.pictures == {"pr_curves": None, "pr_curves_absent": plots.MATPLOTLIB_MISSING}
    assert f"PR curves skipped: {plots.MATPLOTLIB_MISSING}" in caplog.text
    assert _compare([ref, hand], tmp_path / "cmp4").pictures == {}


def test_the_worst_disagreements_are_drawn(tmp_path, tiny_coco, caplog):
    """The pictures are draw_disagreement's, saved as JPEG at quality 90, of the worst images first."""
    import io

    from ssd_eval.data.categories import COCO_CATEGORIES
    from ssd_eval.data.dataset import load_rgb
    from ssd_eval.evaluation.agreement import match_detections
    from ssd_eval.evaluation.detection_log import read_detection_log
    from ssd_eval.reports.pictures import draw_disagreement, ground_truth_detections

    ref = _finished(tmp_path, tiny_coco, "ref", TINY_GT)
    hand = _finished(tmp_path, tiny_coco, "hand", HAND)
    again = _finished(tmp_path, tiny_coco, "again", TINY_GT)
    two = CompareSettings(
        pictures=PicturesConfig(pr_curves=False, disagreements=2, min_score=0.4, max_side=64)
    )
    result = _compare([ref, hand, again], tmp_path / "cmp", settings=two)
    assert result.pictures == {
        "disagreements": {
            "hand": ["disagreements/hand/01-9.jpg", "disagreements/hand/02-2.jpg"],
            "again": [],
        },
        "disagreement_min_score": 0.4,
    }
    ref_dets = read_detection_log(ref / "detections.jsonl")[9]
    run_dets = read_detection_log(hand / "detections.jsonl")[9]
    coco = json.loads((tiny_coco / "annotations" / "instances_val2017.json").read_text())
    expected = draw_disagreement(
        load_rgb(tiny_coco / "val2017" / "000000000009.png"),
        ref_dets,
        run_dets,
        match_detections(ref_dets, run_dets),
        names=("ref", "hand"),
        label_names=dict(COCO_CATEGORIES),
        truth=ground_truth_detections(coco, 9),
        min_score=0.4,
        max_side=64,
    )
    encoded = io.BytesIO()
    expected.save(encoded, format="JPEG", quality=90)
    assert (tmp_path / "cmp" / "disagreements" / "hand" / "01-9.jpg").read_bytes() == encoded.getvalue()
    # Only a detection scoring at least min_score is a visible disagreement: image 7's extra (0.5) is not
    # one at 0.6, and no image is at 0.95.
    high = CompareSettings(pictures=PicturesConfig(pr_curves=False, disagreements=0, min_score=0.6))
    assert _compare([ref, hand], tmp_path / "high", settings=high).runs[1].worst_images == (
        (9, 1.8),
        (2, 0.9),
    )
    higher = CompareSettings(pictures=PicturesConfig(pr_curves=False, disagreements=0, min_score=0.95))
    assert _compare([ref, hand], tmp_path / "higher", settings=higher).runs[1].worst_images == ()
    # An image that cannot be read is left out with a warning; the next one is drawn.
    (tiny_coco / "val2017" / "000000000009.png").write_bytes(b"not a png")
    result = _compare([ref, hand], tmp_path / "cmp2", settings=two)
    assert result.pictures["disagreements"] == {"hand": ["disagreements/hand/02-2.jpg"]}
    assert "disagreement picture of image 9 not drawn: " in caplog.text


def test_the_agreement_iou_threshold_is_the_settings(tmp_path, tiny_coco):
    from ssd_eval.config.compare import AgreementConfig

    ref = _finished(tmp_path, tiny_coco, "ref", TINY_GT)
    hand = _finished(tmp_path, tiny_coco, "hand", HAND)
    loose = CompareSettings(
        agreement=AgreementConfig(iou_threshold=0.2, min_score=0.6), pictures=SETTINGS.pictures
    )
    result = _compare([ref, hand], tmp_path / "cmp", settings=loose)
    assert result.iou_threshold == 0.2 and result.settings["agreement"] == {
        "iou_threshold": 0.2,
        "min_score": 0.6,
    }
    a = result.runs[1].agreement
    assert a is not None and (a.iou_threshold, a.min_score) == (0.2, 0.6)
    # At IoU 0.2 image 9's moved person (IoU 600/2600 = 0.23) is matched: 6 of 7 reference detections
    # (image 1's 2, 5's 2, 7's toothbrush, 9's person), image 2's person missing; image 7's extra.
    assert (a.matched, a.missing, a.extra) == (6, 1, 1)


def test_a_runs_requested_provider_options_and_wall_time_are_carried(tmp_path, tiny_coco):
    ref = _finished(tmp_path, tiny_coco, "ref", TINY_GT)
    options = {"intra_op_num_threads": 1}
    hand = _finished(tmp_path, tiny_coco, "hand", HAND, providers=[{"name": "cpu", "options": options}])
    metrics = json.loads((hand / "metrics.json").read_text())
    (hand / "metrics.json").write_text(json.dumps({**metrics, "wall_s": 2.5}))
    _, run = _compare([ref, hand], tmp_path / "cmp").runs
    assert (run.provider, run.provider_options, run.wall_s) == ("cpu", options, 2.5)


def test_a_run_is_read_with_the_log_s_figures_not_the_ones_metrics_json_recorded(tmp_path, tiny_coco):
    """Per-category AP, the detection count and the skipped images come from the log and skipped.jsonl;
    a difference of exactly 1e-9 in a stat is the same number (above it, another)."""
    from ssd_eval.engine.compare_runs import load_finished_run

    everything = {"root": str(tiny_coco), "selection": "all"}
    folder = _finished(tmp_path, tiny_coco, "ref", TINY_GT, skipped={11: "bad"}, dataset=everything)
    metrics = folder / "metrics.json"
    recorded = json.loads(metrics.read_text())
    scored = load_finished_run(folder).result
    changed = {
        **recorded,
        "num_detections": 99,
        "skipped_images": [],
        "per_category": recorded["per_category"][:1],
    }
    metrics.write_text(json.dumps(changed))
    run = load_finished_run(folder)
    assert (run.result.num_detections, run.result.per_category) == (7, scored.per_category)
    assert [s.image_id for s in run.result.skipped_images] == [11] and len(scored.per_category) > 1
    nothing = _finished(tmp_path, tiny_coco, "nothing", {})
    metrics = nothing / "metrics.json"
    recorded = json.loads(metrics.read_text())
    assert recorded["stats"]["AP"] == 0.0
    metrics.write_text(json.dumps({**recorded, "stats": {**recorded["stats"], "AP": 1e-9}}))
    assert load_finished_run(nothing).warnings == ()


def test_runs_whose_data_moved_are_compared_with_the_data_given(tmp_path, tiny_coco):
    import shutil

    from ssd_eval.engine.compare_runs import load_finished_run

    data = tmp_path / "data"
    shutil.copytree(tiny_coco, data)
    ref = _finished(tmp_path, data, "ref", TINY_GT)
    hand = _finished(tmp_path, data, "hand", HAND)
    moved = data.rename(tmp_path / "moved")
    assert load_finished_run(ref, data=moved).gt.image_ids == [1, 2, 5, 7, 9]
    result = _compare([ref, hand], tmp_path / "cmp", data=moved)
    assert [r.name for r in result.runs] == ["ref", "hand"]
