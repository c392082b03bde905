"""Comparisons of run folders from anywhere: the same report as one process, resumable, refusals.

"Another machine" is a second Python process (`python -m ssd_eval run ...`) with another model; its run
folder is compared with the reference's by `ssd-eval compare RUN_DIR RUN_DIR`, and the report must be
the one a one-process comparison of the same sessions writes. What may differ between the two is
only what says where and when they ran (folders, wall time, latency), which the tests mask.
"""

from __future__ import annotations

import json
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
from ssd_eval.pipeline.session import ProviderSession

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
