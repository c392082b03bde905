"""The run engine's own decisions (`ssd_eval.engine.runner`), each called directly: the run folder's
name, the input size a model is fed, the shard a resume keeps, the per-stage clock, and what happens
to an image that cannot be read or inferred. The values expected are written out here: folder names
from docs/operations.md's pattern `<config>-<provider>[-shardKofN]-<YYYYmmdd-HHMMSS>`, refusals whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import TINY_GT
from helpers import save_table_detector

import ssd_eval
from ssd_eval.config.run import OutputConfig, PreprocessConfig, ProviderConfig, RunConfig, config_from_dict
from ssd_eval.data.dataset import Shard
from ssd_eval.engine import runner
from ssd_eval.engine.run_folder import read_identity
from ssd_eval.engine.runner import RunOptions, model_input_size, run_folder
from ssd_eval.errors import ConfigError, DatasetError, ModelError, OutputError, ProviderError
from ssd_eval.pipeline.feeder import default_workers
from ssd_eval.pipeline.graph_preprocess import GraphPreprocessor
from ssd_eval.reports.results import SkippedImage, StageTiming


class _FixedNow(datetime):
    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return datetime(2026, 3, 4, 5, 6, 7)


@pytest.fixture
def fixed_now(monkeypatch):
    monkeypatch.setattr(runner, "datetime", _FixedNow)


def _config(
    *, provider: str = "cpu", output: OutputConfig | None = None, size: int | None = None
) -> RunConfig:
    return dataclasses.replace(
        RunConfig(),
        providers=(ProviderConfig(name=provider), ProviderConfig(name="cpu")),
        output=output or OutputConfig(dir=Path("/runs")),
        preprocess=PreprocessConfig(size=size),
    )


def test_the_default_run_folder_says_what_ran_and_when(fixed_now):
    assert run_folder(_config(), RunOptions()) == Path("/runs/run-cpu-20260304-050607")
    options = RunOptions(config_name="coco_val", shard=Shard(1, 3))
    assert run_folder(_config(provider="CUDAExecutionProvider"), options) == Path(
        "/runs/coco_val-cuda-shard2of3-20260304-050607"
    )
    assert run_folder(_config(provider="OpenVINO"), RunOptions(shard=Shard(0, 1))) == Path(
        "/runs/run-openvino-shard1of1-20260304-050607"
    )


def test_a_fixed_run_name_and_the_default_output_folder(tmp_path, monkeypatch, fixed_now):
    monkeypatch.chdir(tmp_path)
    named = _config(output=OutputConfig(run_name="mine"))
    assert run_folder(named, RunOptions(shard=Shard(1, 2), config_name="x")) == tmp_path / "results" / "mine"
    assert run_folder(_config(output=OutputConfig()), RunOptions()) == (
        tmp_path / "results" / "run-cpu-20260304-050607"
    )


def test_a_run_name_that_is_no_folder_name_is_refused():
    for name, problem in [
        ("..", "must be a folder name, got '..'"),
        (
            "a/b",
            "must be one folder name without '/', got 'a/b' (the run folder goes into output.dir / --output)",
        ),
    ]:
        with pytest.raises(ConfigError) as raised:
            run_folder(_config(output=OutputConfig(run_name=name)), RunOptions())
        assert str(raised.value) == f"output.run_name (or --run-name): {problem}"
    # A config name that makes the default name a path is refused the same way.
    with pytest.raises(ConfigError, match=r"^output\.run_name \(or --run-name\): must be one folder name"):
        run_folder(_config(), RunOptions(config_name="a/b"))


def test_the_input_size_is_the_models_or_preprocess_size():
    model = Path("/m/net.onnx")
    assert model_input_size(_config(), 1200, 1200, model) == (1200, 1200)
    assert model_input_size(_config(), 300, 400, model) == (300, 400)
    assert model_input_size(_config(size=300), 300, 300, model) == (300, 300)
    # A symbolic size takes preprocess.size, on either side.
    assert model_input_size(_config(size=640), None, None, model) == (640, 640)
    assert model_input_size(_config(size=640), 640, None, model) == (640, 640)
    assert model_input_size(_config(size=640), None, 480, model) == (640, 640)


def test_a_size_the_model_does_not_take_is_refused():
    model = Path("/m/net.onnx")
    for height, width in [(300, 300), (640, 300), (300, 640)]:
        with pytest.raises(ConfigError) as raised:
            model_input_size(_config(size=640), height, width, model)
        assert str(raised.value) == (
            f"preprocess.size 640 does not match the input of /m/net.onnx ({height}x{width}); remove "
            "preprocess.size to use the model's own size"
        )
    for height, width in [(None, None), (1200, None), (None, 1200)]:
        with pytest.raises(ConfigError) as raised:
            model_input_size(_config(), height, width, model)
        assert str(raised.value) == (
            "model /m/net.onnx has a symbolic input size: set preprocess.size in the config"
        )


def test_the_stage_clock_reports_the_first_inference_apart():
    clock = runner._StageClock()
    for seconds in (0.5, 0.1, 0.2, 0.3):
        clock.add("infer", seconds)
    clock.add("read", 0.01)
    clock.add("wait", 0.002)
    timings = clock.summary()
    assert list(timings) == [
        "read",
        "preprocess",
        "infer",
        "decode",
        "write",
        "wait",
        "infer_first",
        "infer_steady",
    ]
    assert timings["infer"] == StageTiming(total_s=1.1, mean_ms=275.0, median_ms=250.0, p90_ms=440.0, count=4)
    assert timings["infer_first"] == StageTiming(0.5, 500.0, 500.0, 500.0, 1)
    assert timings["infer_steady"] == StageTiming(0.6, 200.0, 200.0, 280.0, 3)
    assert timings["read"] == StageTiming(0.01, 10.0, 10.0, 10.0, 1)
    assert timings["wait"] == StageTiming(0.002, 2.0, 2.0, 2.0, 1)
    assert timings["decode"] == StageTiming(0.0, 0.0, 0.0, 0.0, 0)
    empty = runner._StageClock().summary()
    assert empty["infer_first"] == empty["infer_steady"] == StageTiming(0.0, 0.0, 0.0, 0.0, 0)


def _started(folder: Path, shard: str | None) -> Path:
    """A run folder whose run_info.json says it was started as `shard`."""
    from ssd_eval.engine.run_folder import RunInfo, write_run_info
    from ssd_eval.reports.results import ModelInfo

    folder.mkdir(parents=True)
    model = ModelInfo(path="/m/net.onnx", sha256="a" * 64, size_bytes=10, source=None)
    write_run_info(folder, RunInfo(model, (32, 32), shard, ("cpu",), ("CPUExecutionProvider",), ({},)))
    return folder


def test_a_resume_keeps_the_shard_its_folder_started_with(tmp_path):
    unsharded, never, sharded = (
        _started(tmp_path / "a", None),
        tmp_path / "b",
        _started(tmp_path / "c", "2/3"),
    )
    folders = [unsharded, never, sharded]
    # Not a resume: the options as given.
    assert runner._common_shard(folders, RunOptions()) == RunOptions()
    assert runner._common_shard(folders, RunOptions(shard=Shard(0, 2))).shard == Shard(0, 2)
    # A resume takes the shard of the first folder that recorded one, or checks the one given.
    assert runner._common_shard(folders, RunOptions(resume=True)) == RunOptions(
        resume=True, shard=Shard(1, 3)
    )
    assert runner._common_shard([unsharded, never], RunOptions(resume=True)) == RunOptions(resume=True)
    given = RunOptions(resume=True, shard=Shard(1, 3))
    assert runner._common_shard(folders, given) == given
    with pytest.raises(ConfigError) as raised:
        runner._common_shard(folders, RunOptions(resume=True, shard=Shard(0, 3)))
    assert str(raised.value) == (
        f"--shard 1/3 differs from the shard 2/3 that {sharded} was started with: resume it with --shard 2/3 "
        "(or without --shard)"
    )


# --- whole runs on tests/conftest.py's tiny set: 5 annotated images (1, 2, 5, 7, 9), the perfect detector


@pytest.fixture
def perfect(tmp_path: Path, tiny_coco: Path) -> Path:
    return save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)


def _run_config(
    tmp_path: Path, model_file: Path, root: Path, name: str | None = "r", **sections: dict
) -> RunConfig:
    tree: dict = {
        "model": {"path": str(model_file)},
        "dataset": {"root": str(root)},
        "output": {"dir": str(tmp_path / "results"), "run_name": name},
        "report": {"pr_curve": False},
    }
    for key, value in sections.items():
        tree[key] = {**tree.get(key, {}), **value}
    return config_from_dict(tree, base_dir=tmp_path)


def _history(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


class _Ticks:
    """A perf_counter that advances one second per call."""

    def __init__(self) -> None:
        self.now = 99.0  # the first reading is 100 s

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


def test_the_runs_own_clock_is_read_around_each_stage(tmp_path, tiny_coco, perfect, monkeypatch):
    """With a clock that ticks one second per reading, each stage the runner times itself (the wait for
    the feed, decode, write) takes 1 s per image, and the run 33 s: 6 readings per image (two per
    stage) for 5 images, 2 for the end of the feed, 1 to close."""
    monkeypatch.setattr(runner, "time", _Ticks())
    outcome = runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco)], RunOptions(command=("x",)))
    (entry,) = _history(tmp_path / "results" / "r")
    assert (entry["verb"], entry["outcome"], entry["images_inferred"], entry["wall_s"]) == (
        "run",
        "finished",
        5,
        33.0,
    )
    second = {"total_s": 5.0, "mean_ms": 1000.0, "median_ms": 1000.0, "p90_ms": 1000.0, "count": 5}
    for stage in ("wait", "decode", "write"):
        assert entry["timings"][stage] == second, stage
    for stage in ("read", "preprocess", "infer"):
        assert entry["timings"][stage]["count"] == 5, stage
    assert entry["timings"]["infer_first"]["count"] == 1 and entry["timings"]["infer_steady"]["count"] == 4
    assert entry["command"] == ["x"] and entry["folder"] == "r"
    result = outcome.results[0]
    assert (result.wall_s, result.images_per_s) == (33.0, round(5 / 33, 4))
    assert result.timings["decode"] == StageTiming(5.0, 1000.0, 1000.0, 1000.0, 5)


def test_a_run_started_from_python_records_the_library_command(tmp_path, tiny_coco, perfect):
    outcome = runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco)])
    assert outcome.results[0].stats["AP"] == pytest.approx(1.0, abs=1e-12) and outcome.unavailable == {}
    (entry,) = _history(tmp_path / "results" / "r")
    assert entry["command"] == ["python", "-c", "ssd_eval.evaluate(...)"]


class _Progress(runner.Progress):
    seen: ClassVar[list[tuple]] = []

    def __init__(self, total: int = 0, initial: int = 0, description: str = "") -> None:
        self.seen.append(("start", total, initial, description))

    def update(self, count: int = 1) -> None:
        self.seen.append(("update", count))

    def close(self) -> None:
        self.seen.append(("close",))


def test_progress_counts_every_image_and_names_the_sessions(tmp_path, tiny_coco, perfect):
    _Progress.seen = []
    runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco)], RunOptions(progress=_Progress))
    assert _Progress.seen == [("start", 5, 0, "evaluating"), *[("update", 1)] * 5, ("close",)]
    _Progress.seen = []
    two = [_run_config(tmp_path, perfect, tiny_coco, name=name) for name in ("a", "b")]
    runner.run_sessions(two, RunOptions(progress=_Progress))
    assert _Progress.seen == [("start", 5, 0, "evaluating 2 sessions"), *[("update", 1)] * 5, ("close",)]


def test_a_session_whose_provider_does_not_load_is_decided_by_the_caller(tmp_path, tiny_coco, perfect):
    """The first config's provider is not there: `on_unavailable` says why it is skipped; the other runs."""
    absent = dataclasses.replace(
        _run_config(tmp_path, perfect, tiny_coco, name="gone"), providers=(ProviderConfig(name="nosuch"),)
    )
    here = _run_config(tmp_path, perfect, tiny_coco, name="here")
    seen: list[tuple[int, str]] = []

    def skip(index: int, error: ProviderError) -> str:
        seen.append((index, type(error).__name__))
        return "not on this machine"

    finished: list[int] = []
    outcome = runner.run_sessions(
        [absent, here], on_unavailable=skip, on_finished=lambda index, result: finished.append(index)
    )
    assert seen == [(0, "ProviderError")] and outcome.unavailable == {0: "not on this machine"}
    assert list(outcome.results) == [1] and finished == [1]
    assert outcome.results[1].run_dir == str(tmp_path / "results" / "here")
    # Not one session: nothing ran, nothing to finish.
    outcome = runner.run_sessions([absent], on_unavailable=skip)
    assert outcome == runner.SessionsOutcome({}, {0: "not on this machine"})
    with pytest.raises(ProviderError):
        runner.run_sessions([absent])


def test_sessions_fed_one_tensor_must_take_one_input_size(tmp_path, tiny_coco, perfect):
    wide = save_table_detector(tmp_path / "wide.onnx", tiny_coco, TINY_GT, input_size=64)
    configs = [
        _run_config(tmp_path, perfect, tiny_coco, name="small"),
        _run_config(tmp_path, wide, tiny_coco, name=None),
    ]
    with pytest.raises(ConfigError) as raised:
        runner.run_sessions(configs)
    assert str(raised.value) == (
        "the compared models take different input sizes (small 32x32, 1 64x64): one tensor is fed to every "
        "run, so compare models of the same input size"
    )
    # Height first, as the model's input is (1, 3, height, width).
    tall = save_table_detector(tmp_path / "tall.onnx", tiny_coco, TINY_GT, input_size=(48, 32))
    configs = [
        _run_config(tmp_path, perfect, tiny_coco, name="small"),
        _run_config(tmp_path, tall, tiny_coco, name="tall"),
    ]
    with pytest.raises(ConfigError) as raised:
        runner.run_sessions(configs)
    assert str(raised.value).startswith(
        "the compared models take different input sizes (small 32x32, tall 48x32)"
    )


def _logged(folder: Path) -> list[int]:
    return [json.loads(line)["image_id"] for line in (folder / "detections.jsonl").read_text().splitlines()]


def test_run_info_records_what_ran_and_the_folder_is_told(tmp_path, tiny_coco, perfect):
    told: list[Path] = []
    options = RunOptions(shard=Shard(0, 2), on_folder=told.append)
    runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco)], options)
    folder = tmp_path / "results" / "r"
    assert told == [folder]
    info = json.loads((folder / "run_info.json").read_text())
    assert {key: value for key, value in info.items() if key != "model"} == {
        "input_size": [32, 32],
        "shard": "1/2",
        "providers_requested": ["cpu"],
        "providers_used": ["CPUExecutionProvider"],
        "provider_options": [{}],
    }
    assert info["model"]["path"] == str(perfect) and info["model"]["size_bytes"] == perfect.stat().st_size
    assert info["model"]["sha256"] == hashlib.sha256(perfect.read_bytes()).hexdigest()
    # Shard 1 of 2 of the annotated 1, 2, 5, 7, 9: every other image from the first.
    assert _logged(folder) == [1, 5, 9]
    assert (folder / "identity.json").is_file()


@pytest.mark.parametrize(
    ("dataset", "ids"),
    [
        ({"limit": 3}, [1, 2, 5]),
        ({"selection": "all"}, [1, 2, 5, 7, 9, 11]),
        ({"image_ids": "ids.txt"}, [2, 9]),
    ],
)
def test_the_images_run_are_the_configs(tmp_path, tiny_coco, perfect, dataset, ids):
    (tmp_path / "ids.txt").write_text("9\n2\n")
    runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco, dataset=dataset)])
    assert _logged(tmp_path / "results" / "r") == ids


def test_a_model_of_other_input_and_output_names(tmp_path, tiny_coco):
    names = ("pixels", "boxes", "classes", "confidences")
    model = save_table_detector(tmp_path / "renamed.onnx", tiny_coco, TINY_GT, names=names)
    outputs = {"boxes": "boxes", "labels": "classes", "scores": "confidences"}
    config = _run_config(tmp_path, model, tiny_coco, model={"input": "pixels", "outputs": outputs})
    outcome = runner.run_sessions([config])
    assert outcome.results[0].stats["AP"] == pytest.approx(1.0, abs=1e-12)


def test_in_graph_resizing_runs_on_the_providers_with_their_options(
    tmp_path, tiny_coco, perfect, monkeypatch
):
    given: list[list[dict]] = []
    real_init = GraphPreprocessor.__init__

    def recording(self, model_bytes, providers, provider_options, session):  # type: ignore[no-untyped-def]
        given.append([dict(o) for o in provider_options])
        real_init(self, model_bytes, providers, provider_options, session)

    monkeypatch.setattr(GraphPreprocessor, "__init__", recording)
    options = {"arena_extend_strategy": "kSameAsRequested"}
    config = _run_config(tmp_path, perfect, tiny_coco, preprocess={"backend": "onnx-resize"})
    config = dataclasses.replace(config, providers=(ProviderConfig(name="cpu", options=options),))
    outcome = runner.run_sessions([config])
    assert outcome.results[0].stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert given == [[options]]
    (entry,) = _history(tmp_path / "results" / "r")
    assert entry["timings"]["preprocess_graph"]["count"] == 5 and entry["timings"]["preprocess"]["count"] == 5


@pytest.mark.parametrize(("workers", "expected"), [(0, 0), (3, 3), (None, default_workers())])
def test_the_feeder_runs_the_configs_workers(tmp_path, tiny_coco, perfect, monkeypatch, workers, expected):
    seen: list[int] = []
    real = runner.ordered_map

    def recording(fn, items, *, workers):  # type: ignore[no-untyped-def]
        seen.append(workers)
        return real(fn, items, workers=workers)

    monkeypatch.setattr(runner, "ordered_map", recording)
    runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco, preprocess={"workers": workers})])
    assert seen == [expected]


def test_a_missing_image_stops_the_run_keeping_what_was_done(tmp_path, tiny_coco, perfect, monkeypatch):
    """Image 5, the third, is missing: images 1 and 2 stay in the log; restored, the run resumes there."""
    image = tiny_coco / "val2017" / "000000000005.png"
    kept = image.read_bytes()
    image.unlink()
    config = _run_config(tmp_path, perfect, tiny_coco)
    folder = tmp_path / "results" / "r"
    monkeypatch.setattr(runner, "time", _Ticks())
    with pytest.raises(DatasetError) as raised:
        runner.run_sessions([config])
    assert str(raised.value) == (
        f"image {image} not found (stopped; the 2 images done so far are kept: fix the image and continue "
        f"with --resume {folder}, or set dataset.on_bad_image: skip)"
    )
    assert _logged(folder) == [1, 2] and not (folder / "metrics.json").exists()
    # The part that ran is in the history: 2 images; 2 x 6 readings, 2 for the wait on image 5, 1 to close.
    (entry,) = _history(folder)
    assert (entry["verb"], entry["outcome"], entry["images_inferred"], entry["wall_s"]) == (
        "run",
        "stopped",
        2,
        15.0,
    )
    # A caller's own hint replaces `--resume <folder>`.
    hint = RunOptions(resume=True, resume_hint="ssd-eval compare --resume cmp")
    with pytest.raises(DatasetError, match=r"continue with ssd-eval compare --resume cmp, or set "):
        runner.run_sessions([config], hint)
    image.write_bytes(kept)
    _Progress.seen = []
    outcome = runner.run_sessions([config], RunOptions(resume=True, progress=_Progress))
    assert _Progress.seen[0] == ("start", 5, 2, "evaluating") and len(_Progress.seen) == 5
    assert _logged(folder) == [1, 2, 5, 7, 9]
    assert [(e["verb"], e["outcome"], e["images_inferred"]) for e in _history(folder)] == [
        ("run", "stopped", 2),
        ("resume", "stopped", 0),
        ("resume", "finished", 3),
    ]
    assert outcome.results[0].stats["AP"] == pytest.approx(1.0, abs=1e-12)


def test_a_skipped_image_counts_as_missed_and_is_tried_again_on_resume(tmp_path, tiny_coco, perfect, caplog):
    """Image 5 holds one of the 4 persons and one of the 2 dogs: person AP 76/101, dog 51/101, toothbrush 1
    (tests/test_cli.py counts it)."""
    image = tiny_coco / "val2017" / "000000000005.png"
    kept = image.read_bytes()
    image.unlink()
    config = _run_config(tmp_path, perfect, tiny_coco, dataset={"on_bad_image": "skip"})
    folder = tmp_path / "results" / "r"
    caplog.set_level("WARNING")
    result = runner.run_sessions([config]).results[0]
    skipped = SkippedImage(5, "000000000005.png", f"image {image} not found")
    assert result.skipped_images == (skipped,)
    assert result.stats["AP"] == pytest.approx((76 / 101 + 51 / 101 + 1) / 3, abs=1e-12)
    assert _logged(folder) == [1, 2, 7, 9]
    assert [json.loads(line) for line in (folder / "skipped.jsonl").read_text().splitlines()] == [
        {"image_id": 5, "file": "000000000005.png", "reason": f"image {image} not found"}
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"SKIPPED image 5 (000000000005.png): its ground truth counts as missed: image {image} not found",
        f"{folder}: 1 image(s) were skipped; their ground truth counts as missed (see metrics.json)",
    ]
    image.write_bytes(kept)
    caplog.clear()
    resumed = runner.run_sessions([config], RunOptions(resume=True)).results[0]
    assert resumed.skipped_images == () and resumed.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert _logged(folder) == [1, 2, 7, 9, 5] and not (folder / "skipped.jsonl").exists()
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []


def test_a_resume_with_another_model_is_refused(tmp_path, tiny_coco, perfect):
    worse = save_table_detector(tmp_path / "worse.onnx", tiny_coco, {**TINY_GT, 2: []})
    runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco)])
    folder = tmp_path / "results" / "r"
    before = (folder / "detections.jsonl").read_bytes()
    with pytest.raises(ModelError) as raised:
        runner.run_sessions([_run_config(tmp_path, worse, tiny_coco)], RunOptions(resume=True))
    old = hashlib.sha256(perfect.read_bytes()).hexdigest()[:12]
    new = hashlib.sha256(worse.read_bytes()).hexdigest()[:12]
    assert str(raised.value) == (
        f"{folder} was started with model sha256 {old}… but {worse} has sha256 {new}…: resume with the same "
        "model file, or start a new run"
    )
    assert (folder / "detections.jsonl").read_bytes() == before


def test_a_resume_with_other_settings_is_refused(tmp_path, tiny_coco, perfect):
    runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco)])
    folder = tmp_path / "results" / "r"
    other = _run_config(tmp_path, perfect, tiny_coco, decode={"score_threshold": 0.5})
    with pytest.raises(ConfigError) as raised:
        runner.run_sessions([other], RunOptions(resume=True))
    message = str(raised.value)
    assert message.startswith(f"--resume {folder}: ") and "score_threshold" in message
    assert message.endswith(
        ": continue the run as it started (without the flags or config changes that differ), or start a new "
        "run"
    )


def test_a_folder_without_identity_resumes_with_the_one_its_files_say(tmp_path, tiny_coco, perfect):
    """An older run folder (no identity.json) is resumed by what its config.yaml and run_info.json say,
    and gains the identity.json it lacked."""
    image = tiny_coco / "val2017" / "000000000005.png"
    kept = image.read_bytes()
    image.unlink()
    config = _run_config(tmp_path, perfect, tiny_coco)
    with pytest.raises(DatasetError):
        runner.run_sessions([config])
    folder = tmp_path / "results" / "r"
    written = json.loads((folder / "identity.json").read_text())
    (folder / "identity.json").unlink()
    image.write_bytes(kept)
    result = runner.run_sessions([config], RunOptions(resume=True)).results[0]
    assert json.loads((folder / "identity.json").read_text()) == written
    assert result.identity == read_identity(folder) and _logged(folder) == [1, 2, 5, 7, 9]


def test_an_imported_folder_is_not_resumed(tmp_path, tiny_coco, perfect):
    runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco)])
    imported = ssd_eval.import_detections(
        tmp_path / "results" / "r" / "detections.json",
        data=tiny_coco,
        config={"dataset": {"root": str(tiny_coco)}},
        output=tmp_path / "results",
        run_name="imp",
        producer="Triton",
    )
    source = imported.result.identity.source
    assert source is not None
    folder = tmp_path / "results" / "imp"
    with pytest.raises(ConfigError) as raised:
        runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco, name="imp")], RunOptions(resume=True))
    assert str(raised.value) == (
        f"--resume {folder}: its detections were imported ({source.describe()}), not inferred here: there is "
        "nothing to resume; import the file again (ssd-eval import)"
    )
    # A new run over it (output.overwrite) is no resume: it replaces the imported run.
    again = _run_config(tmp_path, perfect, tiny_coco, name="imp", output={"overwrite": True})
    result = runner.run_sessions([again]).results[0]
    assert result.identity.source is None and read_identity(folder) == result.identity


def test_an_output_folder_that_cannot_be_made_is_refused_before_the_model_loads(tmp_path, tiny_coco):
    (tmp_path / "file.txt").write_text("not a folder")
    config = _run_config(tmp_path, tmp_path / "absent.onnx", tiny_coco)
    config = dataclasses.replace(
        config, output=dataclasses.replace(config.output, dir=tmp_path / "file.txt" / "out")
    )
    with pytest.raises(OutputError) as raised:
        runner.run_sessions([config])
    assert str(raised.value) == (
        f"output folder {tmp_path / 'file.txt' / 'out' / 'r'} cannot be created: {tmp_path / 'file.txt'} is "
        "not a writable folder; set output.dir in the config or --output"
    )


def test_a_run_folder_turned_into_a_link_after_the_checks_is_refused_at_the_lock(
    tmp_path, tiny_coco, perfect
):
    """The folder a new run writes is its own: an empty folder of that name is used, but one replaced by
    a symbolic link between the checks and the lock (another process, a race) is refused there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "results" / "r"
    folder.mkdir(parents=True)
    real_check = runner.check_run_folder_free

    def check_then_swap(*args, **kwargs):  # type: ignore[no-untyped-def]
        real_check(*args, **kwargs)
        folder.rmdir()
        folder.symlink_to(elsewhere)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "check_run_folder_free", check_then_swap)
        with pytest.raises(OutputError, match=r"^run folder .* is a symbolic link: "):
            runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco)])
    assert list(elsewhere.iterdir()) == []
    folder.unlink()
    folder.mkdir()
    assert runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco)]).results[0].run_dir == str(folder)


def test_evaluate_run_records_its_own_call_when_given_no_command(tmp_path, tiny_coco, perfect):
    """The history's command of a library run: the call, its config (the file, or <RunConfig> for one
    made in code), then resume and shard when given."""
    call = ["python", "ssd_eval.engine.runner.run_evaluation"]
    config = _run_config(tmp_path, perfect, tiny_coco)
    runner.evaluate_run(config)
    (entry,) = _history(tmp_path / "results" / "r")
    assert entry["command"] == [*call, "<RunConfig>"]
    runner.evaluate_run(config, RunOptions(resume=True))
    assert _history(tmp_path / "results" / "r")[-1]["command"] == [*call, "<RunConfig>", "resume=True"]
    output = dataclasses.replace(config.output, run_name="f")
    runner.evaluate_run(dataclasses.replace(config, source_file=tmp_path / "c.yaml", output=output))
    assert _history(tmp_path / "results" / "f")[0]["command"] == [*call, str(tmp_path / "c.yaml")]
    shard = Shard(index=0, count=2)
    output = dataclasses.replace(config.output, run_name="s")
    runner.evaluate_run(dataclasses.replace(config, output=output), RunOptions(shard=shard))
    assert _history(tmp_path / "results" / "s")[0]["command"] == [*call, "<RunConfig>", f"shard={shard}"]


def test_a_model_fetched_by_its_name_records_that_name(tmp_path, tiny_coco, perfect, monkeypatch):
    """run_info.json's model.source: the known name the model file was fetched by (here the resolver is
    stubbed to say the file came as ssd-10)."""
    real = runner.resolve_assets

    def as_known(config):  # type: ignore[no-untyped-def]
        return dataclasses.replace(real(config), model_source="ssd-10")

    monkeypatch.setattr(runner, "resolve_assets", as_known)
    runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco)])
    info = json.loads((tmp_path / "results" / "r" / "run_info.json").read_text())
    assert (info["model"]["source"], Path(info["model"]["path"]).name) == ("ssd-10", perfect.name)


def test_an_older_folder_resumed_with_other_settings_is_refused(tmp_path, tiny_coco, perfect):
    """Without identity.json, what its config.yaml and run_info.json say is held against the resume."""
    image = tiny_coco / "val2017" / "000000000005.png"
    kept = image.read_bytes()
    image.unlink()
    with pytest.raises(DatasetError):
        runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco)])
    folder = tmp_path / "results" / "r"
    (folder / "identity.json").unlink()
    image.write_bytes(kept)
    other = _run_config(tmp_path, perfect, tiny_coco, decode={"score_threshold": 0.5})
    with pytest.raises(ConfigError) as raised:
        runner.run_sessions([other], RunOptions(resume=True))
    assert str(raised.value).startswith(f"--resume {folder}: ") and "score_threshold" in str(raised.value)
    assert not (folder / "identity.json").exists()


def test_a_resume_keeps_identity_json_as_it_was_written(tmp_path, tiny_coco, perfect):
    """identity.json is written once, when the run starts: a resume leaves the same file."""
    image = tiny_coco / "val2017" / "000000000005.png"
    kept = image.read_bytes()
    image.unlink()
    config = _run_config(tmp_path, perfect, tiny_coco)
    with pytest.raises(DatasetError):
        runner.run_sessions([config])
    identity = tmp_path / "results" / "r" / "identity.json"
    before = (identity.stat().st_ino, identity.read_bytes())
    image.write_bytes(kept)
    runner.run_sessions([config], RunOptions(resume=True))
    assert (identity.stat().st_ino, identity.read_bytes()) == before


def test_an_overwrite_starts_afresh_with_another_model_and_settings(tmp_path, tiny_coco, perfect):
    """output.overwrite replaces a finished run: another model and other settings are no resume to
    refuse, and the old run's files go (its skipped images too)."""
    image = tiny_coco / "val2017" / "000000000005.png"
    kept = image.read_bytes()
    image.write_bytes(b"not an image")
    runner.run_sessions([_run_config(tmp_path, perfect, tiny_coco, dataset={"on_bad_image": "skip"})])
    folder = tmp_path / "results" / "r"
    assert (folder / "skipped.jsonl").is_file()
    image.write_bytes(kept)
    worse = save_table_detector(tmp_path / "worse.onnx", tiny_coco, {**TINY_GT, 2: []})
    again = _run_config(
        tmp_path, worse, tiny_coco, output={"overwrite": True}, decode={"score_threshold": 0.5}
    )
    result = runner.run_sessions([again]).results[0]
    assert not (folder / "skipped.jsonl").exists() and result.skipped_images == ()
    assert _logged(folder) == [1, 2, 5, 7, 9]  # the new run's records alone: the old log went with it
    assert result.model.path == str(worse) and read_identity(folder) == result.identity
    assert json.loads((folder / "identity.json").read_text())["score_threshold"] == 0.5
