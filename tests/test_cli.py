"""The CLI end to end: exit codes, one-line errors for bad input, kept partial results, the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import TINY_GT
from helpers import save_table_detector, write_config

from ssd_eval.cli import main

ONE = pytest.approx(1.0, abs=1e-12)


@pytest.fixture
def setup(tmp_path, tiny_coco):
    model = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    config = write_config(tmp_path / "c.yaml", model, tiny_coco)
    return tmp_path, tiny_coco, model, config


def _fails_with(capsys, argv, pattern: str, code: int = 2) -> str:
    assert main([*argv, "--quiet"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "expected an error line"
    last = err[-1]
    assert "Traceback" not in "\n".join(err)
    assert pattern in last, last
    return last


def _edit(config: Path, **changes) -> Path:
    data = yaml.safe_load(config.read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data.setdefault(section, {})[key] = value
    config.write_text(yaml.safe_dump(data))
    return config


def test_config_errors_exit_2(tmp_path, capsys):
    _fails_with(capsys, ["--config", str(tmp_path / "none.yaml")], "none.yaml' not found")
    (tmp_path / "bad.yaml").write_text("model: [\n")
    _fails_with(capsys, ["--config", str(tmp_path / "bad.yaml")], "invalid YAML")
    (tmp_path / "key.yaml").write_text("modle: {}\n")
    _fails_with(capsys, ["--config", str(tmp_path / "key.yaml")], "key.yaml: modle: unknown key")
    (tmp_path / "type.yaml").write_text("dataset: {limit: many}\n")
    _fails_with(capsys, ["--config", str(tmp_path / "type.yaml")], "dataset.limit: expected an integer")


def test_model_errors_exit_2(setup, capsys):
    tmp_path, coco, _, config = setup
    _fails_with(
        capsys, ["--config", str(config), "--model", str(tmp_path / "gone.onnx")], "gone.onnx not found"
    )
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    _fails_with(
        capsys, ["--config", str(config), "--model", str(tmp_path / "junk.onnx")], "is not a valid ONNX model"
    )
    wrong = save_table_detector(
        tmp_path / "wrong.onnx", coco, TINY_GT, names=("input", "bboxes", "labels", "scores")
    )
    _fails_with(
        capsys, ["--config", str(config), "--model", str(wrong)], "input is named 'input', not 'image'"
    )


def test_wrong_labels_exit_2(setup, capsys):
    tmp_path, coco, _, config = setup
    shifted = save_table_detector(tmp_path / "shifted.onnx", coco, {7: TINY_GT[7]}, label_offset=1)
    _fails_with(capsys, ["--config", str(config), "--model", str(shifted)], "emitted label 81, outside 1..80")


def test_annotation_errors_exit_2(setup, capsys):
    tmp_path, _coco, _, config = setup
    empty = tmp_path / "empty"
    (empty / "val2017").mkdir(parents=True)
    _fails_with(capsys, ["--config", str(config), "--data", str(empty)], "instances_val2017.json not found")
    (empty / "annotations").mkdir()
    (empty / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"annotations": [], "images": []})
    )
    _fails_with(capsys, ["--config", str(config), "--data", str(empty)], "not a COCO instances file")


def test_provider_errors_exit_2(setup, capsys):
    _, _, _, config = setup
    _fails_with(
        capsys, ["--config", str(config), "--provider", "quantum"], "unknown execution provider 'quantum'"
    )
    _fails_with(
        capsys, ["--config", str(config), "--provider", "cuda"], "CUDAExecutionProvider is not available"
    )


def test_output_not_writable_exit_2(setup, capsys):
    tmp_path, _, _, config = setup
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    _fails_with(
        capsys, ["--config", str(config), "--output", str(blocker / "sub")], "is not a writable folder"
    )


def test_existing_run_is_never_overwritten(setup, capsys):
    _, _, _, config = setup
    assert main(["--config", str(config), "--run-name", "r", "--quiet"]) == 0
    _fails_with(
        capsys, ["--config", str(config), "--run-name", "r"], "already exists: continue it with --resume"
    )


def test_bad_image_stops_and_keeps_partial_results(setup, capsys):
    tmp_path, coco, _, config = setup
    (coco / "val2017" / "000000000005.png").write_bytes(b"\x89PNG broken")
    line = _fails_with(capsys, ["--config", str(config), "--run-name", "stop"], "000000000005.png is corrupt")
    assert "2 images done so far are kept" in line
    lines = (tmp_path / "results" / "stop" / "detections.jsonl").read_text().splitlines()
    assert [json.loads(x)["image_id"] for x in lines] == [1, 2]


def test_bad_image_skip_records_it_and_counts_its_ground_truth_as_missed(setup, capsys):
    tmp_path, coco, _, config = setup
    (coco / "val2017" / "000000000005.png").unlink()
    _edit(config, dataset__on_bad_image="skip")
    assert main(["--config", str(config), "--run-name", "skip"]) == 0
    metrics = json.loads((tmp_path / "results" / "skip" / "metrics.json").read_text())
    assert [s["image_id"] for s in metrics["skipped_images"]] == [5]
    assert "not found" in metrics["skipped_images"][0]["reason"]
    # Image 5 held one of 4 persons and one of 2 dogs: person 76/101 (recall 3/4 -> 76 of 101
    # recall points), dog 51/101 (recall 1/2), toothbrush 1.
    assert metrics["stats"]["AP"] == pytest.approx((76 / 101 + 51 / 101 + 1) / 3, abs=1e-12)
    assert "SKIPPED" in capsys.readouterr().out


def test_gate_pass_fail_and_partial_skip(setup, capsys):
    _, _, _, config = setup
    assert (
        main(
            [
                "--config",
                str(config),
                "--run-name",
                "g1",
                "--expect-ap",
                "1.0",
                "--tolerance",
                "0.001",
            ]
        )
        == 0
    )
    assert "gate PASS: AP 1.0000 is within 0.0010" in capsys.readouterr().out
    assert (
        main(
            [
                "--config",
                str(config),
                "--run-name",
                "g2",
                "--expect-ap",
                "0.9",
                "--tolerance",
                "0.01",
            ]
        )
        == 1
    )
    assert (
        "gate FAIL: AP 1.0000 misses the reference 0.9000 by +0.1000 (tolerance 0.0100)"
        in capsys.readouterr().err
    )
    _edit(config, expected__value=0.5, expected__tolerance=0.01)
    assert main(["--config", str(config), "--run-name", "g3", "--limit", "2"]) == 0
    assert (
        "gate not comparable: AP = 0.5000 ± 0.0100: not comparable: the figure is for the whole image "
        "selection, this run evaluated 2 images (limit 2)"
    ) in capsys.readouterr().out
    # A subset is not deferred (nothing later applies the rule): --require-gate makes it a failure.
    assert main(["--config", str(config), "--run-name", "g3r", "--limit", "2", "--require-gate"]) == 1
    assert main(["--config", str(config), "--run-name", "g4"]) == 1


def test_resume_continues_an_interrupted_run(setup, capsys):
    tmp_path, coco, _, config = setup
    image = coco / "val2017" / "000000000007.jpg"
    saved = image.read_bytes()
    image.write_bytes(b"broken")
    assert main(["--config", str(config), "--run-name", "res", "--quiet"]) == 2
    image.write_bytes(saved)
    run_dir = tmp_path / "results" / "res"
    assert len((run_dir / "detections.jsonl").read_text().splitlines()) == 3
    assert main(["--resume", str(run_dir), "--quiet"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["stats"]["AP"] == ONE and metrics["protocol"]["num_images"] == 5
    assert len((run_dir / "detections.jsonl").read_text().splitlines()) == 5


def test_no_config_is_a_usage_error(capsys):
    _fails_with(capsys, [], "no config given")


def test_python_dash_m_entry_point(tmp_path):
    """`python -m ssd_eval` is the documented command: check it as a real process."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "ssd_eval", "--config", str(tmp_path / "x.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("ssd-eval: error: config file") and "Traceback" not in done.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "ssd_eval", "run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_text.returncode == 0 and "--expect-ap" in help_text.stdout


def test_providers_lists_cpu(capsys):
    assert main(["providers"]) == 0
    out = capsys.readouterr().out
    assert "CPUExecutionProvider" in out and "cpu" in out
    # It names the package that provides the module (pip check cannot: see the README's install).
    assert out.startswith("onnxruntime ") and "warning" not in out


def test_providers_says_when_two_packages_provide_onnxruntime(capsys, monkeypatch):
    """onnxruntime and onnxruntime-openvino installed together overwrite each other: said, not hidden."""
    from importlib import metadata

    monkeypatch.setattr(
        metadata, "packages_distributions", lambda: {"onnxruntime": ["onnxruntime-openvino", "onnxruntime"]}
    )
    monkeypatch.setattr(metadata, "version", lambda name: {"onnxruntime": "1.32.0"}.get(name, "1.24.1"))
    assert main(["providers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("onnxruntime: ")
    assert lines[-1] == (
        "warning: 2 packages provide the onnxruntime module (onnxruntime 1.32.0, onnxruntime-openvino "
        "1.24.1) and overwrite each other's files: pip uninstall all of them, then install the one you want"
    )


def test_model_name_and_offline_flag(setup, capsys, monkeypatch):
    """`--model ssd-10 --offline` with an empty cache: one line saying which file to put where."""
    tmp_path, _, _, config = setup
    monkeypatch.setenv("SSD_EVAL_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SSD_EVAL_OFFLINE", raising=False)
    argv = ["--config", str(config), "--model", "ssd-10", "--offline"]
    line = _fails_with(capsys, argv, "downloads are off")
    assert str(tmp_path / "cache" / "models" / "ssd-10.onnx") in line
    assert "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59" in line
