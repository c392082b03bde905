"""Issue 19's bugs met on the way, each pinned: compare --model with a known name and a comparison that
never started, the comparison's wall time, merge's advice, values and paths as shown, baseline --show,
agreement counted as the rules count, -0.0000, the OpenVINO option refusal, and the summary tables."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import onnx
import pytest
from conftest import TINY_GT
from helpers import (
    Det,
    make_identity,
    save_table_detector,
    table_detector,
    write_compare_config,
    write_config,
)

from ssd_eval.cli import build_parser, main
from ssd_eval.cli.compare import apply_overrides
from ssd_eval.coco_stats import delta_text
from ssd_eval.config.compare import load_compare_config
from ssd_eval.config.run import ProviderConfig, SessionConfig
from ssd_eval.config.schema import absolute
from ssd_eval.errors import ProviderError
from ssd_eval.evaluation.identity import describe_differences
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.pipeline.session import ProviderSession
from ssd_eval.reports.report import category_lines


def _compare_config(tmp_path: Path, root: Path, model: Path | None, runs: list[dict], **sections) -> Path:
    return write_compare_config(tmp_path, root, model, runs, **sections)


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["compare", *argv])


def test_compare_model_takes_a_known_name_as_run_does(tmp_path, tiny_coco):
    model = save_table_detector(tmp_path / "m.onnx", tiny_coco, TINY_GT)
    config = load_compare_config(_compare_config(tmp_path, tiny_coco, model, [{"name": "b"}]))
    named = apply_overrides(config, _args("--config", "x", "--model", "twin-600"))
    assert named.model.source == "twin-600" and named.model.path is None
    filed = apply_overrides(config, _args("--config", "x", "--model", str(model)))
    assert filed.model.path == model and filed.model.source is None


def test_a_comparison_that_never_started_is_started_again(tmp_path, tiny_coco, capsys):
    model = save_table_detector(tmp_path / "m.onnx", tiny_coco, TINY_GT)
    path = _compare_config(tmp_path, tiny_coco, model, [{"name": "b", "provider": {"name": "cpu"}}])
    # A missing model file is refused before anything is written: no folder blocks the rerun.
    gone = tmp_path / "gone.onnx"
    assert main(["compare", "--config", str(path), "--model", str(gone), "--run-name", "c", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"model.path: model file {gone} not found" in err and err.count("\n") == 1
    assert not (tmp_path / "results" / "c").exists()
    # An older failed attempt left compare.yaml (with the wrong model) and an empty runs/: a rerun
    # starts it afresh, and so does --resume (with the model given again).
    folder = tmp_path / "results" / "c"
    (folder / "runs").mkdir(parents=True)
    (folder / "compare.yaml").write_text(path.read_text().replace(str(model), str(gone)), encoding="utf-8")
    assert main(["compare", "--resume", str(folder), "--model", str(model), "--quiet"]) == 0
    assert (folder / "runs" / "b" / "metrics.json").is_file()
    assert str(model) in (folder / "compare.yaml").read_text()
    # Once a run has started, the folder is a comparison to continue, not to restart.
    assert main(["compare", "--config", str(path), "--run-name", "c", "--quiet"]) == 2
    assert "already exists: continue it with --resume" in capsys.readouterr().err


def test_the_comparison_wall_time_includes_the_inference(tmp_path, tiny_coco, monkeypatch, capsys):
    model = save_table_detector(tmp_path / "m.onnx", tiny_coco, TINY_GT)
    path = _compare_config(tmp_path, tiny_coco, model, [{"name": "b", "provider": {"name": "cpu"}}])
    real = ProviderSession.infer

    def slow(self, tensor):  # 5 images x 2 sessions x 0.1 s: at least 1 s of inference
        time.sleep(0.1)
        return real(self, tensor)

    monkeypatch.setattr(ProviderSession, "infer", slow)
    assert main(["compare", "--config", str(path), "--run-name", "w", "--quiet"]) == 0
    metrics = json.loads((tmp_path / "results" / "w" / "metrics.json").read_text())
    assert metrics["wall_s"] >= 1.0
    summary = (tmp_path / "results" / "w" / "summary.md").read_text()
    took = float(summary.split("This command took ")[1].split(" s")[0])
    assert took >= 1.0
    # Both sessions were fed by one loop: its wall time is said once.
    assert "the runs' own wall time (reading, inference, scoring): " in summary
    assert "s, one loop feeding every session." in summary


def test_merge_advice_names_merge_flags(tmp_path, tiny_coco, capsys):
    model = save_table_detector(tmp_path / "m.onnx", tiny_coco, TINY_GT)
    config = write_config(tmp_path / "c.yaml", model, tiny_coco)
    shards = []
    for k in (1, 2):
        assert main(["--config", str(config), "--run-name", f"s{k}", "--shard", f"{k}/2", "--quiet"]) == 0
        shards.append(str(tmp_path / "results" / f"s{k}"))
    target = tmp_path / "merged"
    assert main(["merge", *shards, "--output", str(target), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["merge", *shards, "--output", str(target), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pass --overwrite to replace it, or choose another --output" in err
    assert "--resume" not in err and "--run-name" not in err
    assert main(["merge", *shards, "--output", str(target), "--overwrite", "--quiet"]) == 0


def test_differences_show_null_not_none():
    text = describe_differences(
        make_identity(range(10), limit=5).differences(make_identity(range(10))), "this run", "the baseline"
    )
    assert "dataset.limit is 5 in this run but null in the baseline" in text
    assert "None" not in text


def test_paths_are_shown_without_dot_dot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "repo" / "pkg").mkdir(parents=True)
    assert absolute("repo/pkg/../shared/data") == tmp_path / "repo" / "shared" / "data"
    assert absolute(tmp_path / "repo" / "pkg" / ".." / "x") == tmp_path / "repo" / "x"
    # A `..` after a symbolic link means the link target's parent: resolved, not dropped.
    (tmp_path / "far" / "inner").mkdir(parents=True)
    os.symlink(tmp_path / "far" / "inner", tmp_path / "repo" / "link")
    assert absolute("repo/link/../inner") == (tmp_path / "far" / "inner").resolve()
    # What a command line gives is recorded that way too.
    model = tmp_path / "m.onnx"
    config = write_config(tmp_path / "c.yaml", model, tmp_path)
    loaded = apply_overrides(
        load_compare_config(_compare_config(tmp_path, tmp_path, model, [{"name": "b"}])),
        _args("--config", str(config), "--data", "repo/pkg/../coco"),
    )
    assert loaded.dataset.root == tmp_path / "repo" / "coco"


def test_baseline_show_is_readable(capsys):
    assert main(["baseline", "--show", "ssd_eval/baselines/ssd-10-published.json"]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "'" not in out.split("source")[0]  # no Python dict or repr
    assert "input_size 1200x1200" in out and "clip_boxes false" in out
    assert "model      ssd-10.onnx, sha256 80013dd940ef…, size_bytes 80,363,696" in out


def test_delta_text_never_shows_minus_zero():
    assert delta_text(-0.0) == delta_text(0.0) == "0.0000"
    assert delta_text(-0.37404) == "-0.3740" and delta_text(2e-6) == "+2.0e-06"
    assert delta_text(0.5 - 0.5) == "0.0000"


def test_best_and_worst_are_listed_only_when_they_differ():
    def cat(name, ap):
        return CategoryScore(1, name, ap, ap, 1, 1)

    few = [cat("dog", 0.2), cat("person", 0.5), cat("toothbrush", 1.0)]
    assert category_lines(few, 5) == ["AP         toothbrush 1.0000, person 0.5000, dog 0.2000"]
    alike = [cat(str(i), 0.0) for i in range(8)]
    assert category_lines(alike, 5) == ["AP         0.0000 in each of the 8 categories with ground truth"]
    many = [cat(str(i), i / 10) for i in range(8)]
    assert category_lines(many, 2) == ["best AP    7 0.7000, 6 0.6000", "worst AP   0 0.0000, 1 0.1000"]


# The agreement table counts what the rules count: detections scoring >= agreement.min_score (0.1).
FAINT = {**TINY_GT, 7: [*TINY_GT[7], Det(30, 30, 8, 8, 90, 0.05)]}  # an extra toothbrush at 0.05


def test_agreement_table_counts_visible_detections_as_the_rules_do(tmp_path, tiny_coco):
    perfect = save_table_detector(tmp_path / "p.onnx", tiny_coco, TINY_GT)
    faint = save_table_detector(tmp_path / "f.onnx", tiny_coco, FAINT)
    runs = [{"name": "faint", "provider": {"name": "cpu"}, "model": {"path": str(faint)}}]
    path = _compare_config(tmp_path, tiny_coco, perfect, runs, gate={"max_extra": 0.0})
    assert main(["compare", "--config", str(path), "--run-name", "a", "--quiet"]) == 0  # 0.05 not counted
    summary = (tmp_path / "results" / "a" / "summary.md").read_text()
    assert "detections scoring >= 0.1 (agreement.min_score)" in summary
    # 7 ground-truth boxes on both sides (score 0.9); the faint extra only in the all-detections column.
    assert "| faint | 7 of 7 ref, 7 run | 0 | 0 | 5 / 5 | 7 of 7 ref, 8 run |" in summary


def test_summary_holds_every_category_collapsed_with_deltas_in_4_decimals(tmp_path, tiny_coco):
    from test_compare import PERTURBED

    perfect = save_table_detector(tmp_path / "p.onnx", tiny_coco, TINY_GT)
    perturbed = save_table_detector(tmp_path / "q.onnx", tiny_coco, PERTURBED)
    runs = [{"name": "q", "provider": {"name": "cpu"}, "model": {"path": str(perturbed)}}]
    path = _compare_config(tmp_path, tiny_coco, perfect, runs)
    assert main(["compare", "--config", str(path), "--run-name", "t", "--quiet"]) == 0
    summary = (tmp_path / "results" / "t" / "summary.md").read_text()
    block = summary.split("<summary>AP of all 80 categories, every run</summary>")[1].split("</details>")[0]
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 80
    # person: AP 1 in the perfect reference (4 gt boxes); q's figure with 4 decimals and its signed delta.
    person = next(r for r in rows if r.startswith("| person |"))
    cells = [c.strip() for c in person.strip("|").split("|")]
    assert cells[:3] == ["person", "4", "1.0000"]
    ap, delta = cells[5].split(" ")
    assert delta == f"({delta_text(float(ap) - 1.0)})" and len(ap.split(".")[1]) == 4
    largest = summary.split("### Per-category AP, largest drops first")[1].split("\n\n")[1]
    assert "(-" in largest and "e-" not in largest
    for number in [w.strip("(),") for w in largest.split() if w.startswith("(")]:
        assert len(number.split(".")[1]) == 4  # same 4 decimals as every other figure
    # A run's own summary: the full table with detection counts, collapsed.
    config = write_config(tmp_path / "run.yaml", perturbed, tiny_coco)
    assert main(["--config", str(config), "--run-name", "q", "--quiet"]) == 0
    run = (tmp_path / "results" / "q" / "summary.md").read_text()
    assert "<details>\n<summary>AP of all 80 categories</summary>" in run
    assert "| category | AP | AP50 | gt boxes | detections |" in run


def test_openvino_options_refused_are_not_called_missing_libraries(tmp_path, monkeypatch):
    """OpenVINO refuses precision FP16 on its CPU device and onnxruntime falls back to CPU: the error
    names the options (the provider loads without them), not the provider's libraries."""
    import onnxruntime as ort

    path = tmp_path / "m.onnx"
    onnx.save(table_detector([0.0], [[]], [(10, 10)], input_size=8), path)
    available = ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    monkeypatch.setattr(ort, "get_all_providers", lambda: available)
    real = ort.InferenceSession

    class Fake:  # loads OpenVINO unless precision FP16 is asked, as onnxruntime-openvino 1.24 does
        def __init__(self, model, sess_options=None, providers=None, provider_options=None):
            self._session = real(model, sess_options=sess_options, providers=["CPUExecutionProvider"])
            refused = any(o.get("precision") == "FP16" for o in provider_options or [])
            self._providers = ["CPUExecutionProvider"] if refused else [*providers, "CPUExecutionProvider"]

        def get_providers(self):
            return self._providers

        def __getattr__(self, name):
            return getattr(self._session, name)

    monkeypatch.setattr(ort, "InferenceSession", Fake)
    options = {"device_type": "CPU", "precision": "FP16"}
    session = ProviderSession(path, [ProviderConfig("openvino", options)], SessionConfig())
    with pytest.raises(ProviderError) as caught:
        session.activate()
    assert "refused its options device_type=CPU, precision=FP16" in str(caught.value)
    assert "check its libraries" not in str(caught.value)
    # A provider that does not load even without options: its libraries.
    monkeypatch.setattr(Fake, "get_providers", lambda self: ["CPUExecutionProvider"])
    with pytest.raises(ProviderError, match="the provider failed to load: check its libraries"):
        ProviderSession(path, [ProviderConfig("openvino", options)], SessionConfig()).activate()
