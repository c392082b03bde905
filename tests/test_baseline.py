"""Baseline files: the committed published one, reading errors, and making one from a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssd_eval.cli import main
from ssd_eval.config.run import load_config
from ssd_eval.errors import ConfigError, OutputError
from ssd_eval.reports.baseline import baseline_from_metrics, read_baseline, write_baseline

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "results" / "baselines" / "ssd-10-published.json"
SSD10_SHA256 = "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59"


def test_published_baseline_holds_only_the_card_figures():
    baseline = read_baseline(PUBLISHED)
    assert baseline.kind == "published"
    assert baseline.stats == {"AP": 0.195}  # the card states the mAP and nothing else
    assert baseline.per_category == ()
    assert baseline.model["sha256"] == SSD10_SHA256 and baseline.model["size_bytes"] == 80363696
    assert baseline.protocol["selection"] == "annotated" and baseline.protocol["num_images"] == 4952


def test_bundled_run_config_gates_on_the_published_baseline():
    for name in ("coco_val.yaml", REPO / "configs" / "coco_val.yaml"):
        config = load_config(name)
        assert config.gate.baseline is not None and config.gate.max_baseline_drop == 0.003
        assert read_baseline(config.gate.baseline) == read_baseline(PUBLISHED)


def test_read_errors(tmp_path):
    bad = tmp_path / "b.json"
    with pytest.raises(ConfigError, match="not found"):
        read_baseline(bad)
    bad.write_text("{")
    with pytest.raises(ConfigError, match="not readable JSON"):
        read_baseline(bad)
    bad.write_text(json.dumps({"schema": "other"}))
    with pytest.raises(ConfigError, match="not an ssd_eval baseline"):
        read_baseline(bad)
    data = json.loads(PUBLISHED.read_text())
    bad.write_text(json.dumps({**data, "stats": {"mAP": 0.2}}))
    with pytest.raises(ConfigError, match=r"stats.mAP: expected a COCO stat name"):
        read_baseline(bad)
    bad.write_text(json.dumps({**data, "kind": "guessed"}))
    with pytest.raises(ConfigError, match="kind: must be 'published' or 'measured'"):
        read_baseline(bad)


def _metrics(**protocol) -> dict:
    stats = {
        k: 0.5
        for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    }
    return {
        "stats": stats,
        "per_category": [
            {"category_id": 1, "name": "person", "ap": 0.4, "ap50": 0.6, "num_gt": 3, "num_det": 9}
        ],
        "protocol": {
            "selection": "annotated",
            "num_images": 5,
            "input_size": [32, 32],
            "limit": None,
            "shard": None,
            **protocol,
        },
        "model": {"path": "/x/m.onnx", "sha256": "abc", "size_bytes": 10},
        "providers_used": ["CPUExecutionProvider"],
    }


def test_measured_baseline_round_trip(tmp_path):
    baseline = baseline_from_metrics(_metrics(), name="m", source="runs/x")
    assert baseline.kind == "measured" and len(baseline.stats) == 12
    assert baseline.model == {"name": "m.onnx", "sha256": "abc", "size_bytes": 10}
    path = tmp_path / "m.json"
    write_baseline(path, baseline)
    assert read_baseline(path) == baseline
    with pytest.raises(OutputError, match="already exists"):
        write_baseline(path, baseline)
    with pytest.raises(ConfigError, match="the run is partial"):
        baseline_from_metrics(_metrics(limit=2), name="m", source="runs/x")


def test_baseline_command(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(_metrics()))
    out = tmp_path / "b.json"
    assert main(["baseline", str(run), "--output", str(out), "--note", "why"]) == 0
    assert "wrote" in capsys.readouterr().out and read_baseline(out).note == "why"
    assert main(["baseline", str(run), "--output", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["baseline", str(PUBLISHED), "--show"]) == 0
    assert "ssd-10-published (published): AP 0.1950" in capsys.readouterr().out
    assert main(["baseline", str(tmp_path), "--output", str(tmp_path / "c.json")]) == 2
    assert "no metrics.json" in capsys.readouterr().err
