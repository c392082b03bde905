"""`--resume-or-start`: one command line for a batch task that may be requeued (Slurm, Kubernetes)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import Det, TinyImage, make_coco, save_table_detector, write_config

from ssd_eval.cli import main

IMAGES = tuple(TinyImage(10 + 3 * i, 40 + 7 * i, 60 - 2 * i) for i in range(8))
GT = {im.image_id: [Det(2, 3, 20, 15 + i % 5, (1, 18, 90)[i % 3])] for i, im in enumerate(IMAGES)}
DETS = {
    im.image_id: [Det(2 + i % 4, 3, 20, 14, (1, 18, 90)[i % 3], score=0.5 + 0.03 * i)]
    for i, im in enumerate(IMAGES)
}


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    root = make_coco(tmp_path / "coco", IMAGES, GT)
    model = save_table_detector(tmp_path / "model.onnx", root, DETS)
    return root, write_config(tmp_path / "run.yaml", model, root)


def _task(config: Path, k: int) -> int:
    """The same command line every time the task (re)starts."""
    out = str(config.parent / "runs")
    return main(["--config", str(config), "--shard", f"{k}/2", "--run-name", f"shard{k}", "--output", out,
                 "--quiet", "--resume-or-start"])  # fmt: skip


def _logged(run_dir: Path) -> list[int]:
    return [json.loads(line)["image_id"] for line in (run_dir / "detections.jsonl").read_text().splitlines()]


def test_starts_a_new_run_folder(tmp_path):
    _, config = _setup(tmp_path)
    assert _task(config, 1) == 0
    run_dir = tmp_path / "runs" / "shard1"
    assert json.loads((run_dir / "run_info.json").read_text())["shard"] == "1/2"
    assert _logged(run_dir) == [10, 16, 22, 28]  # round-robin over the sorted ids: every other one


def test_a_requeued_task_resumes_its_own_folder(tmp_path, capsys):
    root, config = _setup(tmp_path)
    # The task dies at its third image (a broken file), after writing the first two.
    broken = root / "val2017" / f"{IMAGES[4].image_id:012d}.png"
    original = broken.read_bytes()
    broken.write_bytes(b"not a png")
    assert _task(config, 1) == 2
    run_dir = tmp_path / "runs" / "shard1"
    assert _logged(run_dir) == [10, 16]
    # Without the flag the same command line refuses the existing folder ...
    out = str(tmp_path / "runs")
    assert (
        main(["--config", str(config), "--shard", "1/2", "--run-name", "shard1", "--output", out, "--quiet"])
        == 2
    )
    assert "already exists" in capsys.readouterr().err
    # ... with it, the requeued task continues where the first attempt stopped.
    broken.write_bytes(original)
    assert _task(config, 1) == 0
    assert _logged(run_dir) == [10, 16, 22, 28]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["protocol"]["shard"] == "1/2" and metrics["protocol"]["num_images"] == 4


def test_needs_a_fixed_run_name(tmp_path, capsys):
    _, config = _setup(tmp_path)
    assert main(["--config", str(config), "--quiet", "--resume-or-start"]) == 2
    assert "--resume-or-start needs a fixed run folder name: give --run-name NAME" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path), "--quiet", "--resume-or-start"]) == 2
    assert "--resume-or-start needs --config and --run-name (not --resume)" in capsys.readouterr().err
