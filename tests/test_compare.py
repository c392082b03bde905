"""`ssd-eval compare` on tiny table detectors: zero deltas for twins, hand counts for a perturbed model."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import TINY_GT
from helpers import Det, save_table_detector

from ssd_eval.cli import main
from ssd_eval.config.compare import CompareConfig, compare_config_from_dict, load_compare_config
from ssd_eval.engine.compare import CompareOptions, run_comparison
from ssd_eval.errors import ConfigError, ProviderError
from ssd_eval.reports import plots
from ssd_eval.reports.comparison import RunReport

# The perturbed detector, against a reference that emits the ground truth (score 0.9 each):
PERTURBED = {
    1: [Det(7, 4, 30, 30, 1, 0.8), Det(30, 10, 20, 30, 18)],  # person 3 px right (IoU 810/990), score 0.8
    2: [],  # the person is missed
    5: [Det(0, 0, 60, 45, 1), Det(60, 45, 50, 40, 17)],  # the dog is called a cat
    7: [Det(5, 5, 20, 20, 90), Det(30, 30, 8, 8, 90, 0.5)],  # an extra toothbrush
    9: [Det(45, 10, 40, 40, 1)],  # person 25 px right: IoU 600/2600 < 0.5
}


def _compare(config, options=None):
    """A one-process comparison's report (every run finished here)."""
    result = run_comparison(config, options).result
    assert result is not None
    return result


def _config(tmp_path: Path, root: Path, reference: Path, runs: list[dict], **sections) -> Path:
    data = {
        "model": {"path": str(reference)},
        "reference": {"name": "ref", "provider": {"name": "cpu"}},
        "runs": runs,
        "dataset": {"root": str(root)},
        "output": {"dir": str(tmp_path / "results")},
        "pictures": {"pr_curves": False, "disagreements": 2},
        **sections,
    }
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def models(tmp_path, tiny_coco):
    perfect = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    perturbed = save_table_detector(tmp_path / "perturbed.onnx", tiny_coco, PERTURBED)
    return tiny_coco, perfect, perturbed


def test_two_sessions_of_one_model_agree_fully(tmp_path, models):
    root, perfect, _ = models
    config = load_compare_config(
        _config(tmp_path, root, perfect, [{"name": "again", "provider": {"name": "cpu"}}])
    )
    result = _compare(config, CompareOptions(config_name="t"))
    ref, again = result.runs
    assert ref.name == "ref" and again.name == "again" and again.ran
    # Every defined stat has delta 0; an undefined one (-1: no large objects here) has none (NaN).
    assert again.stats == ref.stats
    assert {k: v for k, v in again.deltas.items() if v == v} == {
        k: 0.0 for k, v in ref.stats.items() if v >= 0
    }
    assert all(d.delta == 0.0 for d in again.category_deltas)
    a = again.agreement
    assert a is not None
    assert (a.reference_detections, a.run_detections, a.matched, a.missing, a.extra) == (7, 7, 7, 0, 0)
    assert a.images_full_agreement == 5
    assert a.score_diff_max == 0 and a.box_diff_px_max == 0
    assert a.raw_scores.abs_max == 0 and a.raw_boxes.abs_max == 0 and a.raw_boxes.rel_max == 0
    assert again.providers_used[0] == "CPUExecutionProvider"
    assert again.latency["infer"].count == 4 and again.latency["infer_first"].count == 1
    assert again.worst_images == ()  # nothing to draw
    assert result.pictures["disagreements"] == {"again": []}
    assert not (Path(result.out_dir) / "disagreements").exists()


def test_perturbed_model_hand_counted(tmp_path, models):
    root, perfect, perturbed = models
    path = _config(
        tmp_path,
        root,
        perfect,
        [{"name": "perturbed", "provider": {"name": "cpu"}, "model": {"path": str(perturbed)}}],
    )
    result = _compare(load_compare_config(path), CompareOptions(config_name="t"))
    run = result.run("perturbed")
    a = run.agreement
    assert a is not None
    # Reference: 7 detections; run: 2 + 0 + 2 + 2 + 1 = 7. Matched: image 1 both, image 5 the person,
    # image 7 the toothbrush = 4. Missing: person of 2, dog of 5, person of 9 = 3. Extra: cat of 5,
    # second toothbrush of 7, shifted person of 9 = 3. Only image 1 agrees fully.
    assert (a.reference_detections, a.run_detections) == (7, 7)
    assert (a.matched, a.missing, a.extra, a.images_full_agreement) == (4, 3, 3, 1)
    # Matched score differences: 0.1 (image 1 person) and three zeros (float32 scores in the model).
    assert a.score_diff_max == pytest.approx(0.1, abs=1e-6)
    assert a.score_diff_mean == pytest.approx(0.025, abs=1e-6)
    # Box differences: 3 px (image 1 person: x1 and x2), else 0.
    assert a.box_diff_px_max == pytest.approx(3.0, abs=1e-4)
    assert a.box_diff_px_mean == pytest.approx(0.75, abs=1e-4)
    # Raw boxes: 4 pairs x 4 corners; x1, x2 of the image-1 person move 3/64 (image 1 is 64 px wide);
    # relative: 3/4 for x1 (4 px) is the largest.
    assert a.raw_boxes.count == 16
    assert a.raw_boxes.abs_max == pytest.approx(3 / 64, abs=1e-6)
    assert a.raw_boxes.abs_mean == pytest.approx(2 * (3 / 64) / 16, abs=1e-6)
    assert a.raw_boxes.rel_max == pytest.approx(0.75, abs=1e-5)
    assert a.raw_scores.rel_max == pytest.approx(0.1 / 0.9, abs=1e-5)
    # COCO AP of the run (ranked by score: image 5 person 0.9, image 9 person 0.9, image 1 person 0.8).
    # person (4 gt): at the 7 IoU thresholds <= 0.80 (image 1 IoU 0.818) TP, FP, TP -> precision 1 up to
    # recall 0.25 (26 recall points) and 2/3 up to 0.5 (25 points); at 0.85-0.95 only 26 points at 1.
    person = (7 * (26 + 25 * 2 / 3) + 3 * 26) / (10 * 101)
    dog = 51 / 101  # one of two found, precision 1 up to recall 0.5
    toothbrush = 1.0  # the true one ranks above the extra
    by_name = {c.name: c for c in run.per_category}
    assert by_name["person"].ap == pytest.approx(person, abs=1e-12)
    assert by_name["dog"].ap == pytest.approx(dog, abs=1e-12)
    assert by_name["toothbrush"].ap == pytest.approx(toothbrush, abs=1e-12)
    assert by_name["cat"].ap is None  # no ground truth: not in the mean
    assert run.stats["AP"] == pytest.approx((person + dog + toothbrush) / 3, abs=1e-12)
    assert run.deltas["AP"] == pytest.approx((person + dog + toothbrush) / 3 - 1.0, abs=1e-12)
    person50 = (26 + 25 * 2 / 3) / 101
    assert run.deltas["AP50"] == pytest.approx((person50 + dog + toothbrush) / 3 - 1.0, abs=1e-12)
    # Per-category deltas, worst first.
    assert [d.name for d in run.category_deltas] == ["person", "dog", "toothbrush"]
    assert run.category_deltas[0].delta == pytest.approx(person - 1.0, abs=1e-12)
    # The images it disagrees with most: 9 (0.9 + 0.9), 5 (0.9 + 0.9), 7 (0.5), 2 (0.9). Image 1 (only a
    # score moved by 0.1, every detection matched) is no real disagreement: neither listed nor drawn.
    assert [i for i, _ in run.worst_images] == [5, 9, 2, 7]
    assert [d for _, d in run.worst_images] == pytest.approx([1.8, 1.8, 0.9, 0.5], abs=1e-6)
    drawn = result.pictures["disagreements"]["perturbed"]
    assert drawn == ["disagreements/perturbed/01-5.jpg", "disagreements/perturbed/02-9.jpg"]
    assert all((Path(result.out_dir) / f).is_file() for f in drawn)


def test_cli_gate_exit_codes_and_ci_files(tmp_path, models, capsys, monkeypatch):
    root, perfect, perturbed = models
    monkeypatch.setattr(plots, "matplotlib_available", lambda: False)
    runs = [{"name": "perturbed", "provider": {"name": "cpu"}, "model": {"path": str(perturbed)}}]
    # AP drops by 0.374 (see above): a 0.5 allowance passes, 0.1 fails; the class rule fails on person/dog.
    ok = _config(tmp_path, root, perfect, runs, gate={"max_ap_drop": 0.5}, pictures={"pr_curves": True})
    assert main(["compare", "--config", str(ok), "--run-name", "ok"]) == 0  # not --quiet: the report
    out = capsys.readouterr().out
    assert "gate PASS: perturbed: AP 0.6260 vs reference ref 1.0000 (delta -0.3740" in out
    folder = tmp_path / "results" / "ok"
    summary = (folder / "summary.md").read_text()
    assert "**Gate: PASS**" in summary and "PR curves: not drawn: matplotlib is not installed" in summary
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["pictures"]["pr_curves"] is None and metrics["gate"]["rules"][0]["state"] == "passed"

    bad = _config(
        tmp_path, root, perfect, runs, gate={"max_ap_drop": 0.1, "max_class_ap_drop": 0.2, "min_ap": 0.7}
    )
    assert main(["compare", "--config", str(bad), "--run-name", "bad"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    failed = [line for line in err if line.startswith("gate FAIL")]
    assert len(failed) == 3, err  # min_ap on the run, max_ap_drop, max_class_ap_drop (one line each)
    assert any("perturbed: AP 0.6260 is below the minimum 0.7000 by 0.0740" in line for line in failed)
    assert any("2 of 3 categories drop more than 0.2000 vs reference ref: person" in line for line in failed)
    tree = ET.parse(tmp_path / "results" / "bad" / "junit.xml")
    suite = tree.getroot().find("testsuite")
    # 4 rules (min_ap on each run, the two drops) and the verdict; 3 rules fail, and the verdict.
    assert suite is not None and suite.get("failures") == "4" and suite.get("tests") == "5"
    failures = {
        case.get("name"): case.find("failure").get("message")  # type: ignore[union-attr]
        for case in suite.iter("testcase")
        if case.find("failure") is not None
    }
    assert set(failures) == {
        "gate verdict",
        "AP >= 0.7000",
        "AP drop vs reference ref <= 0.1000",
        "per-class AP drop vs reference ref <= 0.2000",
    }
    assert "drops more than the allowed 0.1000" in failures["AP drop vs reference ref <= 0.1000"]
    assert (
        "**Gate: FAIL** — 3 of 4 rule(s) failed" in (tmp_path / "results" / "bad" / "summary.md").read_text()
    )


def test_unavailable_provider_is_an_error_or_skipped(tmp_path, models, capsys):
    root, perfect, _ = models
    runs = [{"name": "gpu", "provider": {"name": "cuda", "options": {"device_id": 0}}}]
    path = _config(tmp_path, root, perfect, runs)
    with pytest.raises(
        ProviderError, match=r"runs\[0\] \(gpu\): execution provider CUDAExecutionProvider is not "
    ):
        run_comparison(load_compare_config(path))
    assert main(["compare", "--config", str(path), "--run-name", "x", "--quiet"]) == 2
    assert "set skip_unavailable: true" in capsys.readouterr().err
    # With --skip-unavailable (or skip_unavailable: true) it is recorded as skipped.
    assert main(["compare", "--config", str(path), "--run-name", "y", "--quiet", "--skip-unavailable"]) == 0
    metrics = json.loads((tmp_path / "results" / "y" / "metrics.json").read_text())
    gpu = metrics["runs"][1]
    assert gpu["status"] == "skipped" and "CUDAExecutionProvider is not available" in gpu["skip_reason"]
    assert "**gpu skipped** (cuda)" in (tmp_path / "results" / "y" / "summary.md").read_text()
    # The reference is never skipped; an unknown name is an error even with skip_unavailable.
    ref_cuda = _config(tmp_path, root, perfect, [{"provider": {"name": "cpu"}}], skip_unavailable=True)
    data = yaml.safe_load(ref_cuda.read_text())
    data["reference"]["provider"]["name"] = "cuda"
    ref_cuda.write_text(yaml.safe_dump(data))
    with pytest.raises(ProviderError, match=r"reference \(ref\)"):
        run_comparison(load_compare_config(ref_cuda))
    data["reference"]["provider"]["name"] = "cpu"
    data["runs"] = [{"provider": {"name": "warp-drive"}}]
    ref_cuda.write_text(yaml.safe_dump(data))
    with pytest.raises(ProviderError, match="unknown execution provider 'warp-drive'"):
        run_comparison(load_compare_config(ref_cuda))


def test_config_errors_name_the_dotted_key(tmp_path):
    base = {"model": {"path": "m.onnx"}, "dataset": {"root": "."}}
    cases = [
        (
            {"runs": [{"provider": {"name": "cpu"}}, {"provider": {"name": 3}}]},
            r"runs\[1\].provider.name: expected a string",
        ),
        ({"runs": [{"provider": {"nmae": "cpu"}}]}, r"runs\[0\].provider.nmae: unknown key"),
        ({}, r"runs: missing required key"),
        ({"runs": []}, r"runs: list at least one run"),
        (
            {"runs": [{"provider": {"name": "cpu"}}]},
            r"runs\[0\].name: 'cpu' is already the name of reference",
        ),
        (
            {"runs": [{"name": "x"}], "agreement": {"iou_threshold": 0}},
            r"agreement.iou_threshold: must be in \(0, 1\]",
        ),
        ({"runs": [{"name": "x"}], "gate": {"max_ap_drop": 2}}, r"gate.max_ap_drop: must be in \[0, 1\]"),
        ({"runs": [{"name": "x"}], "gate": {"metric": "mAP"}}, r"gate.metric: must be one of AP"),
        (
            {"runs": [{"name": "x"}], "preprocess": {"backend": "onnx-resize"}},
            r"preprocess.backend: a comparison feeds",
        ),
    ]
    for extra, pattern in cases:
        with pytest.raises(ConfigError, match=r"c.yaml: " + pattern):
            compare_config_from_dict({**base, **extra}, base_dir=tmp_path, source=Path("c.yaml"))
    config = compare_config_from_dict(
        {**base, "runs": [{"name": "x", "model": {"path": "sub/other.onnx"}}]}, base_dir=tmp_path
    )
    assert config.model.path == tmp_path / "m.onnx"
    assert config.runs[0].model is not None and config.runs[0].model.path == tmp_path / "sub" / "other.onnx"


def test_models_of_different_input_sizes_are_refused(tmp_path, models):
    root, perfect, _ = models
    other = save_table_detector(tmp_path / "big.onnx", root, TINY_GT, input_size=48)
    path = _config(tmp_path, root, perfect, [{"name": "big", "model": {"path": str(other)}}])
    with pytest.raises(ConfigError, match=r"different input sizes \(ref 32x32, big 48x48"):
        run_comparison(load_compare_config(path))


def test_bundled_config_loads():
    config = load_compare_config("compare_providers.yaml")
    assert config.model.source == "twin-1200" and config.skip_unavailable
    assert [r.provider.name for r in config.all_runs] == ["cpu", "openvino"]


def test_pr_curve_numbers_and_plot(tmp_path, tiny_coco):
    import numpy as np

    from ssd_eval.data.dataset import open_ground_truth
    from ssd_eval.pipeline.decode import Detections

    gt = open_ground_truth(tiny_coco / "annotations" / "instances_val2017.json", tiny_coco / "val2017")
    perfect = [
        Detections(
            i,
            np.asarray([[d.x, d.y, d.w, d.h] for d in TINY_GT[i]], dtype=np.float64),
            np.full(len(TINY_GT[i]), 0.9),
            np.asarray([d.category_id for d in TINY_GT[i]], dtype=np.int64),
        )
        for i in gt.image_ids
    ]
    curve = plots.pr_curve(gt.coco_json, perfect, image_ids=gt.image_ids)
    assert curve.precision_50 == pytest.approx(np.ones(101), abs=1e-12)
    nothing = plots.pr_curve(
        gt.coco_json, [Detections.empty(i) for i in gt.image_ids], image_ids=gt.image_ids
    )
    # Nothing matched: no curve, and one line says why; a perfect run beside it: a linear axis.
    assert plots.plot_plan({"none": nothing}).scale is None
    assert "precision is 0 at every recall" in plots.plot_plan({"none": nothing}).reason
    assert plots.plot_plan({"none": nothing, "perfect": curve}) == plots.PlotPlan("linear")
    # Precision 0.01 at every recall: low but there, drawn on a log axis with the reason.
    low = plots.PrCurve(curve.recall, np.full(101, 0.01), np.full(101, 0.01), np.full(101, 0.01))
    plan = plots.plot_plan({"low": low})
    assert plan.scale == "log" and "below 0.05" in plan.reason
    # Without image 2's person: person precision 1 up to recall 0.75 (76 points), then 0; dog and
    # toothbrush 1 everywhere -> the mean over categories is 1 up to 0.75 and 2/3 beyond.
    missing = [d if d.image_id != 2 else Detections.empty(2) for d in perfect]
    curve = plots.pr_curve(gt.coco_json, missing, image_ids=gt.image_ids)
    assert curve.precision_mean[:76] == pytest.approx(np.ones(76), abs=1e-12)
    assert curve.precision_mean[76:] == pytest.approx(np.full(25, 2 / 3), abs=1e-12)
    if plots.matplotlib_available():
        plots.plot_pr_curves({"a": curve}, tmp_path / "pr.png", title="t")
        assert (tmp_path / "pr.png").stat().st_size > 0


def test_disagreement_picture_is_drawn_at_a_legible_size():
    import numpy as np

    from ssd_eval.evaluation.agreement import match_detections
    from ssd_eval.pipeline.decode import Detections
    from ssd_eval.reports import pictures

    pixels = np.full((48, 64, 3), 120, np.uint8)  # a small image: enlarged to the drawn size
    ref = Detections(1, np.array([[4.0, 4, 30, 30]]), np.array([0.9]), np.array([1]))
    run = Detections(1, np.array([[40.0, 4, 20, 30]]), np.array([0.8]), np.array([1]))
    image = pictures.draw_disagreement(
        pixels,
        ref,
        run,
        match_detections(ref, run),
        names=("a", "b"),
        label_names={1: "person"},
        max_side=640,
    )
    # Two panels of 640 px (64 px enlarged 10x) with a 6 px gap; 480 px of image under a caption bar.
    assert image.width == 2 * 640 + 6 and image.height > 480
    _, top, _, bottom = pictures.label_font(640).getbbox("person 0.90")
    assert bottom - top >= 12  # 1/40 of 640 px = 16 px type; the bitmap default is ~11 px


# --- the parts of a comparison run, one at a time (engine/compare.py) -------------------------------

ALL_KNOWN = ("CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider")


def _compare_config(tmp_path: Path, **raw) -> CompareConfig:
    data = {"model": {"path": "m.onnx"}, "dataset": {"root": "."}, "runs": [{"name": "ov", "provider":
            {"name": "openvino"}}], **raw}  # fmt: skip
    return compare_config_from_dict(data, base_dir=tmp_path)


class _Now:
    """datetime.now() at a known second."""

    @staticmethod
    def now():
        import datetime

        return datetime.datetime(2026, 3, 4, 5, 6, 7)


def test_the_comparison_folder_is_named_by_the_config_and_the_time(tmp_path, monkeypatch):
    from ssd_eval.data.dataset import Shard
    from ssd_eval.engine import compare as compare_module
    from ssd_eval.engine.compare import compare_folder

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(compare_module, "datetime", _Now)
    config = _compare_config(tmp_path)
    assert compare_folder(config, CompareOptions()) == tmp_path / "results" / "compare-20260304-050607"
    sharded = CompareOptions(config_name="cpu-vs-ov", shard=Shard(1, 3))
    assert compare_folder(config, sharded) == tmp_path / "results" / "cpu-vs-ov-shard2of3-20260304-050607"
    named = _compare_config(tmp_path, output={"dir": "out", "run_name": "mine"})
    assert compare_folder(named, sharded) == tmp_path / "out" / "mine"
    bad = dataclasses.replace(named, output=dataclasses.replace(named.output, run_name=".."))
    with pytest.raises(ConfigError) as info:
        compare_folder(bad, CompareOptions())
    assert str(info.value) == "output.run_name (or --run-name): must be a folder name, got '..'"


def test_a_comparison_folder_is_read_back_from_its_compare_yaml(tmp_path):
    from ssd_eval.engine.compare import load_comparison_config
    from ssd_eval.errors import OutputError

    folder = tmp_path / "results" / "cmp"
    folder.mkdir(parents=True)
    with pytest.raises(OutputError) as info:
        load_comparison_config(folder)
    assert str(info.value) == f"{folder} is not a comparison folder: it has no compare.yaml"
    advice = (
        "it is written by `ssd-eval compare --config`: restore it from a copy, or delete the comparison "
        "folder and compare again"
    )
    (folder / "compare.yaml").write_text("runs: [\n")
    with pytest.raises(ConfigError) as info:
        load_comparison_config(folder)
    assert str(info.value).startswith(f"{folder / 'compare.yaml'}:")
    assert str(info.value).endswith(f"; {advice}")
    (folder / "compare.yaml").write_text(yaml.safe_dump({"model": {"path": "m.onnx"}, "runs": []}))
    with pytest.raises(ConfigError) as info:
        load_comparison_config(folder)
    assert str(info.value) == (
        f"{folder / 'compare.yaml'}: runs: list at least one run to compare with the reference, e.g. "
        f"[{{provider: {{name: openvino}}}}]; {advice}"
    )
    recorded = {
        "model": {"path": "m.onnx"},
        "runs": [{"name": "ov"}],
        "output": {"dir": "/x", "run_name": "y"},
    }
    (folder / "compare.yaml").write_text(yaml.safe_dump(recorded))
    config = load_comparison_config(folder)
    assert (config.output.dir, config.output.run_name) == (tmp_path / "results", "cmp")
    assert config.model.path == folder / "m.onnx" and config.source_file == folder / "compare.yaml"


def test_each_side_runs_into_its_own_folder_of_the_comparison(tmp_path):
    from ssd_eval.engine.compare import session_config

    config = _compare_config(tmp_path, output={"overwrite": True})
    run = session_config(config, config.runs[0], tmp_path / "cmp")
    assert (run.output.dir, run.output.run_name, run.output.overwrite) == (
        tmp_path / "cmp" / "runs",
        "ov",
        True,
    )
    assert run.providers[0].name == "openvino" and run.model.path == tmp_path / "m.onnx"


def test_a_provider_is_unknown_available_or_not_here():
    from ssd_eval.config.compare import RunSpec
    from ssd_eval.config.run import ProviderConfig
    from ssd_eval.engine.compare import _provider_problem
    from ssd_eval.pipeline.session import PROVIDER_ALIASES

    def spec(name: str) -> RunSpec:
        return RunSpec(provider=ProviderConfig(name=name))

    available = ("CPUExecutionProvider",)
    assert _provider_problem(spec("cpu"), available, ALL_KNOWN) is None
    assert _provider_problem(spec("CPUExecutionProvider"), available, ALL_KNOWN) is None
    assert _provider_problem(spec("ov"), available, ALL_KNOWN) == (
        "execution provider OpenVINOExecutionProvider is not available in this onnxruntime (available: "
        "CPUExecutionProvider); pip install onnxruntime-openvino (in place of onnxruntime)"
    )
    with pytest.raises(ProviderError) as info:
        _provider_problem(spec("warp-drive"), ("CPUExecutionProvider", "AzureExecutionProvider"), ALL_KNOWN)
    assert str(info.value) == (
        f"unknown execution provider 'warp-drive'; short names: {', '.join(sorted(PROVIDER_ALIASES))}; "
        "available here: "
        "CPUExecutionProvider, AzureExecutionProvider"
    )


def test_an_unavailable_provider_is_an_error_or_recorded_as_skipped(caplog):
    from ssd_eval.engine.compare import _unavailable

    with pytest.raises(ProviderError) as info:
        _unavailable("gpu", "runs[1]", "not here", skip=False)
    assert str(info.value) == "runs[1] (gpu): not here; or set skip_unavailable: true to record it as skipped"
    with pytest.raises(ProviderError) as info:
        _unavailable("ref", "reference", "not here", skip=False)
    assert str(info.value) == "reference (ref): not here"  # the reference is never skipped
    assert _unavailable("gpu", "runs[1]", "not here", skip=True) == "not here"
    assert "run gpu skipped: not here" in caplog.text


def test_provider_selects_the_runs_to_run_here(tmp_path):
    from ssd_eval.engine.compare import _selected

    config = _compare_config(
        tmp_path,
        reference={"name": "ref", "provider": {"name": "cpu"}},
        runs=[
            {"name": "ov", "provider": {"name": "OpenVINOExecutionProvider"}},
            {"name": "gpu", "provider": {"name": "cuda"}},
            {"name": "odd", "provider": {"name": "MyOwnProvider"}},
        ],
    )
    assert _selected(config, (), ALL_KNOWN) == [0, 1, 2, 3]
    assert _selected(config, ("cpu",), ALL_KNOWN) == [0]
    assert _selected(config, ("openvino", "CUDA"), ALL_KNOWN) == [1, 2]
    assert _selected(config, ("ov",), ALL_KNOWN) == [1]
    assert _selected(config, ("MyOwnProvider",), ALL_KNOWN) == [3]  # unknown names match as written
    with pytest.raises(ProviderError) as info:
        _selected(config, ("dml", "rocm"), ALL_KNOWN)
    assert str(info.value) == (
        "--provider dml, rocm matches none of the comparison's runs: ref (cpu), "
        "ov (OpenVINOExecutionProvider), gpu (cuda), odd (MyOwnProvider)"
    )


def test_a_comparison_has_started_when_a_run_wrote_a_file(tmp_path):
    from ssd_eval.engine.compare import _runs_started

    folder = tmp_path / "cmp"
    assert not _runs_started(folder)
    folder.mkdir()
    (folder / "compare.yaml").write_text("x")
    (folder / "run.lock").write_text("")
    assert not _runs_started(folder)
    (folder / "runs" / "ref").mkdir(parents=True)
    (folder / "runs" / "notes.txt").write_text("x")  # a file beside the run folders is no run
    assert not _runs_started(folder)
    (folder / "runs" / "ref" / "run.lock").write_text("")
    assert _runs_started(folder)
    (folder / "runs" / "ref" / "run.lock").unlink()
    (folder / "summary.md").write_text("x")
    assert _runs_started(folder)
    (folder / "summary.md").unlink()
    (folder / "runs").rename(tmp_path / "moved")
    (folder / "runs").write_text("x")  # not a folder: nothing of a run in it
    assert not _runs_started(folder)


def test_a_missing_model_file_is_refused_naming_its_key(tmp_path):
    from ssd_eval.engine.compare import _check_model_files
    from ssd_eval.errors import ModelError

    (tmp_path / "m.onnx").write_bytes(b"x")
    config = _compare_config(
        tmp_path,
        reference={"name": "ref", "model": {"path": "ref.onnx"}},
        runs=[
            {"name": "a"},
            {"name": "b", "model": {"path": "b.onnx"}},
            {"name": "c", "model": {"source": "ssd-10"}},
        ],
    )
    _check_model_files(config, [1, 3])  # the comparison's model is there; a source is fetched later

    def refusal(index: int) -> str:
        with pytest.raises(ModelError) as info:
            _check_model_files(config, [1, index])
        return str(info.value)

    tail = (
        ": give an ONNX file, or a known model name with --model (ssd-10, ssd-12-int8, twin-1200, twin-600, "
        "...) or model.source"
    )
    assert refusal(0) == f"reference.model.path: model file {tmp_path / 'ref.onnx'} not found{tail}"
    assert refusal(2) == f"runs[1].model.path: model file {tmp_path / 'b.onnx'} not found{tail}"
    (tmp_path / "m.onnx").unlink()
    assert refusal(1) == f"model.path: model file {tmp_path / 'm.onnx'} not found{tail}"


def test_a_folder_that_is_not_a_fresh_comparison_is_refused_before_any_session(tmp_path):
    from ssd_eval.engine.compare import run_comparison as run
    from ssd_eval.errors import OutputError

    config = _compare_config(tmp_path, reference={"name": "ref"}, runs=[{"name": "b"}],
                             output={"dir": str(tmp_path / "results"), "run_name": "cmp"})  # fmt: skip
    folder = tmp_path / "results" / "cmp"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("x")
    overwrite = dataclasses.replace(config, output=dataclasses.replace(config.output, overwrite=True))
    for cfg, options in ((overwrite, CompareOptions()), (config, CompareOptions(resume=True))):
        with pytest.raises(OutputError) as info:
            run(cfg, options)
        assert str(info.value) == (
            f"{folder} holds files but is not a comparison folder (no compare.yaml), so nothing in it is "
            "replaced; choose another --run-name"
        )
    with pytest.raises(OutputError) as info:
        run(config)
    assert str(info.value) == (
        f"comparison folder {folder} already exists: continue it with --resume {folder}, choose another "
        "--run-name, or set output.overwrite: true"
    )
    link = tmp_path / "results" / "link"
    link.symlink_to(folder, target_is_directory=True)
    linked = dataclasses.replace(config, output=dataclasses.replace(config.output, run_name="link"))
    with pytest.raises(OutputError) as info:
        run(linked)
    assert str(info.value).startswith(f"comparison folder {link} is a symbolic link: ")
    (tmp_path / "file").write_text("x")
    elsewhere = dataclasses.replace(config, output=dataclasses.replace(config.output, dir=tmp_path / "file"))
    with pytest.raises(OutputError) as info:
        run(elsewhere)
    assert str(info.value).startswith(f"output folder {tmp_path / 'file' / 'cmp'} cannot be created: ")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]  # nothing written


def _flaky_copy(tmp_path: Path, model: Path, monkeypatch) -> Path:
    """A copy of `model` whose session fails to start (a busy device): ProviderError on activate."""
    import shutil

    from ssd_eval.pipeline.session import ProviderSession

    flaky = tmp_path / "flaky.onnx"
    shutil.copyfile(model, flaky)
    real_activate = ProviderSession.activate

    def activate(session):
        if session.model.name == "flaky.onnx":
            raise ProviderError("the device is busy")
        real_activate(session)

    monkeypatch.setattr(ProviderSession, "activate", activate)
    return flaky


def test_a_session_that_fails_to_start_is_skipped_or_an_error(tmp_path, models, monkeypatch):
    """A provider onnxruntime lists but cannot start (a busy device): the run is recorded as skipped, with
    its request and note, and the others are compared; the comparison times itself."""
    import types

    from ssd_eval.engine import compare as compare_module

    root, perfect, _ = models
    flaky = _flaky_copy(tmp_path, perfect, monkeypatch)
    runs = [
        {"name": "again", "provider": {"name": "cpu"}, "note": "twice"},
        {"name": "flaky", "provider": {"name": "cpu", "options": {"device_id": 3}},
         "model": {"path": str(flaky)}, "note": "busy GPU"},
    ]  # fmt: skip
    path = _config(tmp_path, root, perfect, runs, skip_unavailable=True)
    clock = iter([10.0, 14.2504])  # the wall time is rounded to the millisecond
    monkeypatch.setattr(compare_module, "time", types.SimpleNamespace(perf_counter=lambda: next(clock, 0.0)))
    seen: list[Path] = []
    verdict = object()
    outcome = run_comparison(
        load_compare_config(path),
        CompareOptions(config_name="t", on_folder=seen.append),
        gate=lambda r: verdict,
    )
    assert (outcome.finished, outcome.waiting, outcome.gated, seen) == (("ref", "again"), ("flaky",), verdict,
                                                                        [outcome.folder])  # fmt: skip
    result = outcome.result
    assert result is not None and result.wall_s == 4.25
    ref, again, skipped = result.runs
    assert (ref.name, again.name, again.note, again.status) == ("ref", "again", "twice", "ran")
    assert skipped == RunReport(
        name="flaky",
        status="skipped",
        provider="cpu",
        provider_options={"device_id": 3},
        note="busy GPU",
        skip_reason="the device is busy",
    )
    assert sorted(p.name for p in (outcome.folder / "runs").iterdir()) == ["again", "ref"]
    # Without skip_unavailable it is an error naming the run; the reference is never skipped.
    data = yaml.safe_load(path.read_text())
    data["skip_unavailable"] = False
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProviderError) as info:
        run_comparison(load_compare_config(path))
    assert str(info.value) == (
        "runs[1] (flaky): the device is busy; or set skip_unavailable: true to record it as skipped"
    )
    data["skip_unavailable"] = True
    data["model"]["path"] = str(flaky)
    data["runs"] = [{"name": "again", "provider": {"name": "cpu"}, "model": {"path": str(perfect)}}]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProviderError) as info:
        run_comparison(load_compare_config(path))
    assert str(info.value) == "reference (ref): the device is busy"


def test_a_comparison_folder_that_cannot_be_written_is_one_line(tmp_path, models, monkeypatch):
    import errno

    from ssd_eval.engine import compare as compare_module
    from ssd_eval.errors import OutputError

    root, perfect, _ = models
    path = _config(tmp_path, root, perfect, [{"name": "again", "provider": {"name": "cpu"}}])

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(compare_module, "write_text_atomic", full)
    with pytest.raises(OutputError) as info:
        run_comparison(load_compare_config(path), CompareOptions(config_name="t"))
    folder = Path(str(info.value).split(": ")[0].removeprefix("cannot write the comparison folder "))
    assert str(info.value) == f"cannot write the comparison folder {folder}: No space left on device"
    assert folder.parent == tmp_path / "results" and folder.name.startswith("t-")


def test_the_comparison_gate_is_written_into_its_folder(tmp_path, tiny_coco):
    """record_compare_gate: metrics.json (gate and provenance), junit.xml and summary.md agree."""
    import dataclasses as dc

    from helpers import write_run_folder

    from ssd_eval.engine.compare import record_compare_gate
    from ssd_eval.engine.compare_runs import compare_runs
    from ssd_eval.engine.rescore import rescore_run
    from ssd_eval.reports.verdict import Invocation

    folders = []
    for name, table in (("ref", TINY_GT), ("miss", {k: v for k, v in TINY_GT.items() if k != 2})):
        folders.append(write_run_folder(tmp_path / "runs" / name, tiny_coco, table))
        rescore_run(folders[-1])
    config = _compare_config(tmp_path, gate={"max_ap_drop": 0.05}, pictures={"pr_curves": False})
    skipped = RunReport("gpu", "skipped", "cuda", {}, skip_reason="not here")
    result = compare_runs(folders, tmp_path / "cmp", settings=config.settings, skipped_runs=[skipped])
    result = dc.replace(result, wall_s=2.5)
    invocation = Invocation(("ssd-eval", "compare", "runs/ref", "runs/miss"), "2026-01-01T00:00:00Z")
    comparison = record_compare_gate(result, config, None, invocation=invocation)
    # AP without image 2's person: (76/101 + 1 + 1) / 3, a drop of 0.0825 > 0.05.
    assert (comparison.folder, comparison.verdict, comparison.exit_code) == (tmp_path / "cmp", "FAIL", 1)
    assert comparison.gate is not None and comparison.result is not None
    assert comparison.result.gate == comparison.gate.to_json()
    metrics = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    assert metrics["gate"]["verdict"] == "FAIL" and metrics["wall_s"] == 2.5
    assert metrics["provenance"]["command"] == ["ssd-eval", "compare", "runs/ref", "runs/miss"]
    assert metrics["provenance"]["started"] == "2026-01-01T00:00:00Z"
    assert comparison.result.provenance == metrics["provenance"]
    suite = ET.parse(tmp_path / "cmp" / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("name"), suite.get("time"), suite.get("failures")) == (
        "ssd-eval compare cmp",
        "2.500",
        "2",
    )
    figures = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert figures["ref.AP"] == repr(1.0) and figures["miss.AP"] == repr(metrics["runs"][1]["stats"]["AP"])
    assert metrics["runs"][1]["stats"]["AP"] == pytest.approx((76 / 101 + 2) / 3, abs=1e-12)
    assert figures["ref.APl"] == "n/a" and not any(name.startswith("gpu.") for name in figures)
    assert len([n for n in figures if "." in n]) == 24  # 12 stats of each run that ran
    assert "**Gate: FAIL**" in (tmp_path / "cmp" / "summary.md").read_text()


def test_a_comparison_passes_its_options_to_the_runs(tmp_path, models):
    """Progress, the command line each run's history records, and how to continue after a bad image."""
    from ssd_eval.errors import DatasetError

    root, perfect, _ = models
    path = _config(tmp_path, root, perfect, [{"name": "again", "provider": {"name": "cpu"}}],
                   output={"dir": str(tmp_path / "results"), "run_name": "cmp"})  # fmt: skip
    folder = tmp_path / "results" / "cmp"
    folder.mkdir(parents=True)
    (folder / "run.lock").write_text("")  # a lock alone holds nothing: the comparison starts there
    (root / "val2017" / "000000000007.jpg").write_bytes(b"not a jpeg")  # the 4th of images 1 2 5 7 9
    shown = []

    class Shown:
        def __init__(self, total: int, initial: int, description: str) -> None:
            shown.append((total, initial, description))

        def update(self, count: int = 1) -> None:
            shown.append(count)

        def close(self) -> None:
            shown.append("closed")

    command = ("ssd-eval", "compare", "--config", str(path))
    with pytest.raises(DatasetError) as info:
        run_comparison(load_compare_config(path), CompareOptions(progress=Shown, command=command))
    assert str(info.value).endswith(
        f"(stopped; the 3 images done so far are kept: fix the image and continue with ssd-eval compare "
        f"--resume {folder}, or set dataset.on_bad_image: skip)"
    )
    assert shown == [(5, 0, "evaluating 2 sessions"), 1, 1, 1, "closed"]
    for name in ("ref", "again"):
        (entry,) = [
            json.loads(line) for line in (folder / "runs" / name / "history.jsonl").read_text().splitlines()
        ]
        assert (entry["command"], entry["outcome"], entry["images_inferred"]) == (list(command), "stopped", 3)
    assert yaml.safe_load((folder / "compare.yaml").read_text())["runs"][0]["name"] == "again"


def test_a_comparison_folder_in_use_or_with_planted_links_is_refused(tmp_path):
    import os

    from ssd_eval.engine.run_folder import locked_run_folder
    from ssd_eval.errors import OutputError

    config = _compare_config(tmp_path, reference={"name": "ref"}, runs=[{"name": "b"}],
                             output={"dir": str(tmp_path / "results"), "run_name": "cmp"})  # fmt: skip
    (tmp_path / "m.onnx").write_bytes(b"x")
    folder = tmp_path / "results" / "cmp"
    with locked_run_folder(folder), pytest.raises(OutputError) as info:
        run_comparison(config)
    assert str(info.value) == (
        f"run folder {folder} is in use by ssd-eval pid {os.getpid()}: wait for it to end (or stop it), then "
        "run this command again"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder.mkdir(parents=True)
    (folder / "compare.yaml").write_text("x")  # an attempt that stopped before its first image
    (folder / "runs").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputError) as info:
        run_comparison(config)
    assert str(info.value) == (
        f"folder {folder / 'runs'} is a symbolic link: ssd-eval writes a new folder of its own there (link "
        "the folder above it if it should live elsewhere); remove the link or choose another name"
    )
    (folder / "runs").unlink()
    (folder / "runs").mkdir()
    (folder / "runs" / "b").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputError) as info:
        run_comparison(config)
    assert str(info.value).startswith(f"folder {folder / 'runs' / 'b'} is a symbolic link: ")
    assert list(elsewhere.iterdir()) == []


def test_the_first_run_may_be_skipped_when_its_session_fails_to_start(tmp_path, models, monkeypatch):
    """runs[0] (the first after the reference) is skipped like any other run with skip_unavailable."""
    root, perfect, _ = models
    flaky = _flaky_copy(tmp_path, perfect, monkeypatch)
    runs = [
        {"name": "flaky", "provider": {"name": "cpu"}, "model": {"path": str(flaky)}},
        {"name": "again", "provider": {"name": "cpu"}},
    ]
    path = _config(tmp_path, root, perfect, runs, skip_unavailable=True)
    outcome = run_comparison(load_compare_config(path))
    assert (outcome.finished, outcome.waiting) == (("ref", "again"), ("flaky",))
    assert outcome.result is not None
    assert [(r.name, r.status) for r in outcome.result.runs] == [
        ("ref", "ran"),
        ("again", "ran"),
        ("flaky", "skipped"),
    ]


def test_a_resume_keeps_compare_yaml_and_an_overwrite_writes_it_again(tmp_path, models):
    """compare.yaml holds the config in its own order; a resume leaves the file as it is (the same file,
    not a copy written again); an overwrite records the new config."""
    from ssd_eval.config.schema import config_to_dict

    root, perfect, _ = models
    output = {"dir": str(tmp_path / "results"), "run_name": "cmp"}
    path = _config(tmp_path, root, perfect, [{"name": "again", "provider": {"name": "cpu"}, "note": "first"}],
                   output=output)  # fmt: skip
    config = load_compare_config(path)
    run_comparison(config)
    recorded = tmp_path / "results" / "cmp" / "compare.yaml"
    keys = list(yaml.safe_load(recorded.read_text()))
    assert keys == list(config_to_dict(config)) and keys != sorted(keys)
    before = (recorded.stat().st_ino, recorded.read_bytes())
    run_comparison(config, CompareOptions(resume=True))
    assert (recorded.stat().st_ino, recorded.read_bytes()) == before
    data = yaml.safe_load(path.read_text())
    data["runs"][0]["note"] = "second"
    data["output"]["overwrite"] = True
    path.write_text(yaml.safe_dump(data))
    run_comparison(load_compare_config(path))
    assert yaml.safe_load(recorded.read_text())["runs"][0]["note"] == "second"


def test_the_comparison_gate_holds_the_runs_to_the_baseline_it_is_given(tmp_path, tiny_coco):
    """record_compare_gate passes its baseline to the rules: each run that ran is held to it."""
    from helpers import write_run_folder

    from ssd_eval.engine.compare import record_compare_gate
    from ssd_eval.engine.compare_runs import compare_runs
    from ssd_eval.engine.rescore import rescore_run
    from ssd_eval.reports.baseline import read_baseline
    from ssd_eval.reports.verdict import Invocation

    folders = []
    for name in ("ref", "again"):
        folders.append(write_run_folder(tmp_path / "runs" / name, tiny_coco, TINY_GT))
        rescore_run(folders[-1])
    published = Path(__file__).resolve().parents[1] / "results" / "baselines" / "ssd-10-published.json"
    config = _compare_config(tmp_path, gate={"baseline": str(published), "max_baseline_drop": 0.05},
                             pictures={"pr_curves": False})  # fmt: skip
    result = compare_runs(folders, tmp_path / "cmp", settings=config.settings)
    invocation = Invocation(("ssd-eval", "compare"), "2026-01-01T00:00:00Z")
    comparison = record_compare_gate(result, config, read_baseline(published), invocation=invocation)
    assert comparison.gate is not None
    held = [c for c in comparison.gate.checks if "vs baseline ssd-10-published" in c.rule]
    assert [c.subject for c in held] == ["ref", "again"]


def test_a_resume_begins_a_comparison_never_started_and_follows_a_link_it_is_given(tmp_path, models):
    """--resume of a folder that is not there starts the comparison in it; --resume of a link to a
    comparison folder continues the folder it points to (the folder is the one named, links and all)."""
    root, perfect, _ = models
    output = {"dir": str(tmp_path / "results"), "run_name": "cmp"}
    path = _config(tmp_path, root, perfect, [{"name": "again", "provider": {"name": "cpu"}}], output=output)
    config = load_compare_config(path)
    outcome = run_comparison(config, CompareOptions(resume=True))
    assert outcome.result is not None and outcome.finished == ("ref", "again")
    moved = tmp_path / "elsewhere"
    (tmp_path / "results" / "cmp").rename(moved)
    (tmp_path / "results" / "cmp").symlink_to(moved)
    outcome = run_comparison(config, CompareOptions(resume=True))
    assert outcome.result is not None and outcome.finished == ("ref", "again")
    assert (moved / "runs" / "again" / "metrics.json").is_file()
