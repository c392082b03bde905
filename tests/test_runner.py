"""The run engine's own decisions (`ssd_eval.engine.runner`), each called directly: the run folder's
name, the input size a model is fed, the shard a resume keeps, the per-stage clock, and what happens
to an image that cannot be read or inferred. The values expected are written out here: folder names
from docs/operations.md's pattern `<config>-<provider>[-shardKofN]-<YYYYmmdd-HHMMSS>`, refusals whole.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import TINY_GT
from helpers import save_table_detector

from ssd_eval.config.run import OutputConfig, PreprocessConfig, ProviderConfig, RunConfig, config_from_dict
from ssd_eval.data.dataset import Shard
from ssd_eval.engine import runner
from ssd_eval.engine.runner import RunOptions, model_input_size, run_folder
from ssd_eval.errors import ConfigError, ProviderError
from ssd_eval.reports.results import StageTiming


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
    tmp_path: Path, model: Path, root: Path, name: str | None = "r", **sections: dict
) -> RunConfig:
    tree: dict = {
        "model": {"path": str(model)},
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
