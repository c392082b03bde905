"""Which shard folders `ssd-eval merge` accepts, and how their timings add up (pure, no runs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ssd_eval.config.run import RunConfig
from ssd_eval.engine.merge import ShardRun, _combine_timings, check_compatible
from ssd_eval.engine.run_folder import RunInfo
from ssd_eval.errors import OutputError
from ssd_eval.reports.results import ModelInfo, StageTiming

MODEL = ModelInfo(path="/m/ssd.onnx", sha256="a" * 64, size_bytes=10, source=None)


def shard(folder: str, k: str | None, *, config: RunConfig | None = None, **info) -> ShardRun:
    base = RunInfo(
        model=MODEL,
        input_size=(1200, 1200),
        shard=k,
        providers_requested=("CUDAExecutionProvider", "CPUExecutionProvider"),
        providers_used=("CUDAExecutionProvider", "CPUExecutionProvider"),
        provider_options=({}, {}),
    )
    return ShardRun(Path(folder), config or RunConfig(), dataclasses.replace(base, **info))


def refusal(*runs: ShardRun) -> str:
    with pytest.raises(OutputError) as info:
        check_compatible(runs)
    return str(info.value)


def test_a_complete_set_of_shards_in_any_order():
    assert check_compatible([shard("/r/s3", "3/3"), shard("/r/s1", "1/3"), shard("/r/s2", "2/3")]) == 3
    # The fallback providers behind the one under test may differ.
    assert check_compatible(
        [shard("/r/a", "1/2"), shard("/r/b", "2/2", providers_used=("CUDAExecutionProvider",))]
    )


def test_another_model_or_provider_is_refused():
    other = dataclasses.replace(MODEL, sha256="b" * 64)
    assert refusal(shard("/r/a", "1/2"), shard("/r/b", "2/2", model=other)) == (
        f"cannot merge: /r/b has model sha256 {'b' * 64} but /r/a has {'a' * 64}; "
        "merge only the shards of one run"
    )
    cpu = ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert refusal(shard("/r/a", "1/2"), shard("/r/b", "2/2", providers_used=cpu)) == (
        "cannot merge: /r/b has provider under test ('CPUExecutionProvider',) but /r/a has "
        "('CUDAExecutionProvider',); merge only the shards of one run"
    )


@pytest.mark.parametrize(
    ("key", "change", "shown"),
    [
        ("dataset.selection", {"dataset": {"selection": "all"}}, "'all'"),
        ("dataset.limit", {"dataset": {"limit": 20}}, "20"),
        ("dataset.annotations", {"dataset": {"annotations": Path("other.json")}}, "PosixPath('other.json')"),
        ("decode", {"decode": {"clip_boxes": True}}, "{'score_threshold': 0.0, 'clip_boxes': True"),
        ("preprocess.backend", {"preprocess": {"backend": "opencv"}}, "'opencv'"),
        ("preprocess.mean/std", {"preprocess": {"mean": (0.5, 0.5, 0.5)}}, "((0.5, 0.5, 0.5), (0.229"),
    ],
)
def test_another_protocol_is_refused_naming_the_setting(key, change, shown):
    ((section, values),) = change.items()
    config = RunConfig()
    config = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **values)})
    message = refusal(shard("/r/a", "1/2"), shard("/r/b", "2/2", config=config))
    assert message.startswith(f"cannot merge: protocol differs: {key} is {shown}")
    assert message.endswith("in /r/a; merge only the shards of one run")
    assert " in /r/b but " in message


def test_another_input_size_is_refused():
    message = refusal(shard("/r/a", "1/2"), shard("/r/b", "2/2", input_size=(1200, 600)))
    assert message == (
        "cannot merge: protocol differs: input_size is (1200, 600) in /r/b but (1200, 1200) in /r/a; "
        "merge only the shards of one run"
    )


def test_shard_sets_that_are_not_one_run():
    assert refusal(shard("/r/a", "1/2"), shard("/r/b", None)) == (
        "cannot merge: /r/b is not a shard (it was run without --shard K/N)"
    )
    assert (
        refusal(shard("/r/a", "1/2"), shard("/r/b", "2/3")) == "cannot merge: shard counts differ (1/2, 2/3)"
    )
    assert refusal(shard("/r/a", "1/2"), shard("/r/b", "1/2")) == (
        "cannot merge: shard 1/2 is given twice (/r/a and /r/b)"
    )
    assert refusal(shard("/r/a", "2/4")) == (
        "cannot merge: shard(s) 1, 3, 4 of 4 are missing; give every shard's run folder"
    )


def test_timings_add_up_by_hand():
    a = {"infer": StageTiming(2.0, 20.0, 18.0, 30.0, 100), "read": StageTiming(0.5, 5.0, 4.0, 9.0, 100)}
    b = {"infer": StageTiming(1.0, 10.0, 9.0, 12.0, 300), "score": StageTiming(0.0, 0.0, 0.0, 0.0, 0)}
    combined = _combine_timings([a, b])
    assert sorted(combined) == ["infer", "read"]  # a stage with no sample is left out
    # infer: 3.0 s over 400 images -> 7.5 ms; median (18*100 + 9*300) / 400 = 11.25;
    # p90 (30*100 + 12*300) / 400 = 16.5.
    assert combined["infer"] == StageTiming(total_s=3.0, mean_ms=7.5, median_ms=11.25, p90_ms=16.5, count=400)
    assert combined["read"] == StageTiming(total_s=0.5, mean_ms=5.0, median_ms=4.0, p90_ms=9.0, count=100)
    # Rounding: seconds to 4 places, milliseconds to 3.
    c = {"infer": StageTiming(1.23456789, 1.0, 1.23456789, 2.34567891, 3)}
    assert _combine_timings([c])["infer"] == StageTiming(1.2346, 411.523, 1.235, 2.346, 3)
    assert _combine_timings([]) == {}
