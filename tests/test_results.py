"""The results record (reports/results.py): metrics.json written and read back, older files included,
the protocol summary, timings of a run made of parts, the history entries, and what a run records of
the machine and the packages it ran with.

Expectations are hand counts (percentiles and count-weighted means worked out below), the legacy
fixture's metrics.json (tests/data/legacy_v1, written by an older ssd_eval), whole refusal lines
written out, and what a stand-in for the environment (package metadata, platform, git) was told.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pytest
from helpers import make_identity

import ssd_eval.reports.results as results
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.reports.gate import GateReport, check_min
from ssd_eval.reports.results import (
    ModelInfo,
    Protocol,
    Provenance,
    RunResult,
    RunTimes,
    SkippedImage,
    StageTiming,
    combine_timings,
    describe_model,
    gate_facts,
    machine_info,
    package_versions,
    provenance,
    provenance_from_json,
    record_verdict,
    result_from_json,
    runtime_distributions,
    source_commit,
    utc_now,
)

LEGACY = Path(__file__).resolve().parent / "data" / "legacy_v1"
SSD10_SHA256 = "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59"
IDENTITY = make_identity(range(1, 7))


def _entry(verb: str, **changes: object) -> Provenance:
    base = Provenance(
        started="2026-12-02T07:51:00Z",
        finished="2026-12-02T07:51:11Z",
        command=("ssd-eval", "--config", "c.yaml"),
        ssd_eval_version="0.1.0",
        git_commit=None,
        verb=verb,
    )
    return Provenance(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def _result(**changes: object) -> RunResult:
    """A result with every field set to something other than its default."""
    base = RunResult(
        run_dir="results/ci",
        stats={"AP": 0.25, "AP50": 0.5},
        per_category=(
            CategoryScore(1, "person", 0.25, 0.5, 4, 9),
            CategoryScore(2, "bicycle", None, None, 0, 1),
        ),
        identity=IDENTITY,
        model=ModelInfo("models/ssd-10.onnx", SSD10_SHA256, 80363696, "ssd-10"),
        providers_requested=("cpu",),
        providers_used=("CPUExecutionProvider",),
        provider_options=({"arena": "1"},),
        num_detections=10,
        timings={"infer": StageTiming(1.5, 750.0, 700.0, 900.0, 2)},
        wall_s=2.0,
        images_per_s=1.0,
        skipped_images=(SkippedImage(6, "000000000006.png", "corrupt"),),
        warnings=("image 3 has 250 detections, more than the card's 200",),
        config={"dataset": {"limit": None}},
        versions={"onnxruntime": "1.32.0"},
        machine={"cpu_count": 2},
        gate={"verdict": "FAIL", "exit_code": 1},
        diagnosis={"cause": "labels", "line": "AP 0.002 ...", "evidence": {"AP": 0.002}},
        history=(
            _entry("run", outcome="stopped", images_inferred=4, wall_s=1.5),
            _entry("resume", images_inferred=2, wall_s=0.5, folder="results/ci"),
            _entry("score"),
        ),
        pictures={"pr_curve": None, "pr_curve_note": "matplotlib is not installed"},
    )
    return RunResult(**{**base.__dict__, **changes})  # type: ignore[arg-type]


# --- metrics.json: written, read back ---


def test_metrics_json_reads_back_as_the_result_that_wrote_it():
    result = _result()
    assert result_from_json(json.loads(json.dumps(result.to_json())), IDENTITY) == result


def test_metrics_json_records_the_protocol_and_the_runs_own_history_entry():
    data = _result().to_json()
    assert data["protocol"] == {
        "selection": "annotated",
        "num_images": 6,
        "total_images": 6,
        "annotated_images": 6,
        "limit": None,
        "shard": None,
        "clip_boxes": False,
        "score_threshold": 0.0,
        "preprocess": "pillow",
        "input_size": (1200, 1200),
        "id_list_sha256": None,
    }
    assert data["per_category"][1] == {
        "category_id": 2,
        "name": "bicycle",
        "ap": None,
        "ap50": None,
        "num_gt": 0,
        "num_det": 1,
    }
    first = {
        "started": "2026-12-02T07:51:00Z",
        "finished": "2026-12-02T07:51:11Z",
        "command": ["ssd-eval", "--config", "c.yaml"],
        "ssd_eval_version": "0.1.0",
        "git_commit": None,
        "verb": "run",
        "outcome": "stopped",
        "images_inferred": 4,
        "wall_s": 1.5,
        "timings": {},
        "folder": "",
    }
    assert data["provenance"] == first  # the run's own entry, not the last command's
    assert [e["verb"] for e in data["history"]] == ["run", "resume", "score"] and data["history"][0] == first
    assert data["identity"]["images"]["image_ids"] == []  # the ids live in identity.json, not here
    assert _result().ap == 0.25
    assert _result(history=()).provenance == {} and _result(history=()).to_json()["provenance"] == {}


def test_an_older_metrics_json_reads_back_with_its_provenance_as_the_history():
    # The legacy fixture's run-a (ssd_eval 0.1.0 of 2026-12-02): one `provenance`, no `history`.
    data = json.loads((LEGACY / "run-a" / "metrics.json").read_text())
    result = result_from_json(data, IDENTITY)
    assert result.stats["AP"] == 73 / 101  # tests/legacy_data.py: detector A, AP = (70 + 76) / 202
    assert result.skipped_images == (
        SkippedImage(
            6,
            "000000000006.png",
            "image @DATA@/val2017/000000000006.png is corrupt or not an image: cannot identify image file "
            "'@DATA@/val2017/000000000006.png'",
        ),
    )
    assert result.warnings == ()
    assert result.config["model"]["source"] == "ssd-10"
    assert result.versions["onnxruntime"] == "1.32.0"
    assert result.machine["cpu_count"] == 2
    assert (result.gate["verdict"], result.gate["reason"]) == ("PASS", "3 of 3 rule(s) passed")
    assert result.diagnosis is None and result.pictures == {}
    assert result.history == (
        Provenance(
            started="2026-12-02T07:51:11Z",
            finished="2026-12-02T07:51:11Z",
            command=(
                "ssd-eval",
                "--config",
                "@CONFIGS@/a-gated.yaml",
                "--run-name",
                "run-a",
                "--expect-ap",
                "0.7228",
                "--tolerance",
                "0.001",
                "--quiet",
            ),
            ssd_eval_version="0.1.0",
            git_commit="42051d3ab1fabfd91801c69defc6efb4c726b2c2",
        ),
    )


def _oldest() -> dict:
    """The keys every ssd_eval wrote into metrics.json; the others came later and have defaults."""
    data = _result().to_json()
    kept = (
        "run_dir",
        "stats",
        "per_category",
        "model",
        "providers_requested",
        "providers_used",
        "provider_options",
        "num_detections",
        "timings",
        "wall_s",
        "images_per_s",
    )
    return {key: data[key] for key in kept}


def test_a_metrics_json_with_only_the_first_versions_keys_reads_back_with_defaults():
    result = result_from_json(_oldest(), IDENTITY)
    assert result == _result(
        skipped_images=(),
        warnings=(),
        config={},
        versions={},
        machine={},
        gate={},
        diagnosis=None,
        history=(),
        pictures={},
    )


def test_a_gate_or_pictures_that_is_not_an_object_reads_as_none_recorded():
    # An older ssd_eval wrote `"gate": null` before any rule existed; pictures likewise.
    result = result_from_json({**_oldest(), "gate": None, "pictures": "none", "provenance": {}}, IDENTITY)
    assert (result.gate, result.pictures, result.history) == ({}, {}, ())


def test_a_metrics_json_with_a_history_reads_every_entry_and_ignores_the_old_provenance():
    data = {**_oldest(), "history": [_entry("run").to_json()], "provenance": _entry("score").to_json()}
    assert result_from_json(data, IDENTITY).history == (_entry("run"),)


# --- the protocol summary and what the gate reads of a run ---


def test_protocol_of_a_shard_of_a_non_square_run():
    identity = make_identity(range(1, 9), "2/4", input_size=(300, 400), clip_boxes=True, score_threshold=0.05)
    assert Protocol.of(identity) == Protocol(
        selection="annotated",
        num_images=2,
        total_images=8,
        annotated_images=8,
        limit=None,
        shard="2/4",
        clip_boxes=True,
        score_threshold=0.05,
        preprocess="pillow",
        input_size=(300, 400),
        id_list_sha256=None,
    )
    assert Protocol.of(identity).input_text == "300x400"
    listed = dataclasses.replace(
        identity, images=dataclasses.replace(identity.images, id_list_sha256="ab" * 32)
    )
    assert Protocol.of(listed).id_list_sha256 == "ab" * 32 and not Protocol.of(listed).complete
    assert Protocol.of(make_identity(range(1, 3), input_size=None)).input_text == "not known"


def test_a_protocol_is_complete_only_without_limit_shard_and_id_list():
    whole = Protocol("annotated", 5, 5, 5, None, None, False, 0.0, "pillow", (1200, 1200))
    assert whole.complete
    assert not Protocol(**{**whole.__dict__, "limit": 5}).complete
    assert not Protocol(**{**whole.__dict__, "shard": "1/2"}).complete
    assert not Protocol(**{**whole.__dict__, "id_list_sha256": "ab" * 32}).complete


def test_gate_facts_of_a_shard():
    identity = make_identity(range(1, 9), "2/4")
    facts = gate_facts(_result(identity=identity))
    assert facts.stats == {"AP": 0.25, "AP50": 0.5} and facts.per_category == _result().per_category
    assert (facts.selection, facts.num_images, facts.complete) == ("annotated", 2, False)
    assert (facts.model_sha256, facts.model_name) == (SSD10_SHA256, "ssd-10.onnx")
    assert (facts.partial, facts.subset, facts.identity) == ("shard 2/4", "", identity)


def test_gate_facts_of_a_limited_and_of_a_whole_run():
    limited = gate_facts(_result(identity=make_identity(range(1, 7), limit=6)))
    assert (limited.complete, limited.partial, limited.subset) == (False, "", "limit 6")
    whole = gate_facts(_result())
    assert (whole.complete, whole.partial, whole.subset, whole.num_images) == (True, "", "", 6)


# --- timings ---


def test_stage_timing_of_samples_by_hand():
    # 12.3451, 23.4561, 34.5671 ms: total 70.3683 ms; median the middle one; p90 at 0.9 * (3 - 1) = 1.8
    # between the 2nd and 3rd: 23.4561 + 0.8 * 11.111 = 32.3449 ms.
    timing = StageTiming.from_samples([0.0123451, 0.0345671, 0.0234561])
    assert timing == StageTiming(total_s=0.0704, mean_ms=23.456, median_ms=23.456, p90_ms=32.345, count=3)
    assert StageTiming.from_samples([]) == StageTiming(0.0, 0.0, 0.0, 0.0, 0)


def test_combined_timings_add_totals_and_weigh_median_and_p90_by_count():
    parts = [
        {"infer": StageTiming(1.0, 500.0, 400.0, 900.0, 2)},
        {"infer": StageTiming(0.5, 250.0, 200.0, 300.0, 2), "read": StageTiming(0.1, 100.0, 90.0, 110.0, 1)},
        {"infer": StageTiming(0.0, 0.0, 0.0, 0.0, 0), "decode": StageTiming(0.0, 0.0, 0.0, 0.0, 0)},
    ]
    combined = combine_timings(parts)
    # infer: 1.5 s over 4 images = 375 ms; median (400 * 2 + 200 * 2) / 4; p90 (900 * 2 + 300 * 2) / 4.
    assert combined == {
        "infer": StageTiming(1.5, 375.0, 300.0, 600.0, 4),
        "read": StageTiming(0.1, 100.0, 90.0, 110.0, 1),
    }
    assert list(combined) == ["infer", "read"]  # a stage that timed nothing is left out
    # Rounding: 1.23457 s over 3 images is 411.52333... ms.
    odd = combine_timings([{"infer": StageTiming(1.23457, 411.52, 1.2344, 2.3456, 3)}])
    assert odd == {"infer": StageTiming(1.2346, 411.523, 1.234, 2.346, 3)}


def test_run_times_add_up_the_parts_that_inferred():
    history = [
        _entry(
            "run",
            images_inferred=4,
            wall_s=2.1234,
            timings={"infer": StageTiming(1.0, 250.0, 250.0, 250.0, 4)},
        ),
        _entry("score", images_inferred=9, wall_s=5.0),  # re-scoring infers nothing
        _entry(
            "resume",
            images_inferred=2,
            wall_s=1.0,
            timings={"infer": StageTiming(0.5, 250.0, 250.0, 250.0, 2)},
        ),
    ]
    # 6 images in 3.1234 s: 1.92098... images/s.
    assert RunTimes.of(history) == RunTimes(
        timings={"infer": StageTiming(1.5, 250.0, 250.0, 250.0, 6)}, wall_s=3.123, images_per_s=1.921
    )
    # Under a second: 2 images in 0.5 s.
    assert RunTimes.of([_entry("run", images_inferred=2, wall_s=0.5)]) == RunTimes({}, 0.5, 4.0)
    assert RunTimes.of([_entry("score", wall_s=3.0)]) == RunTimes({}, 0.0, 0.0)
    assert RunTimes.of([]) == RunTimes({}, 0.0, 0.0)


# --- history entries ---


def test_a_history_entry_with_only_its_times_gets_the_defaults():
    assert provenance_from_json({"started": "a", "finished": "b"}) == Provenance(
        started="a",
        finished="b",
        command=(),
        ssd_eval_version="",
        git_commit=None,
        verb="",
        outcome="finished",
        images_inferred=0,
        wall_s=0.0,
        timings={},
        folder="",
    )


def test_a_history_entry_reads_back_as_written():
    entry = _entry(
        "resume",
        git_commit="42051d3ab1fabfd91801c69defc6efb4c726b2c2",
        outcome="stopped",
        images_inferred=3,
        wall_s=1.25,
        timings={"infer": StageTiming(1.0, 333.333, 300.0, 400.0, 3)},
        folder="results/ci",
    )
    assert provenance_from_json(json.loads(json.dumps(entry.to_json()))) == entry
    assert entry.to_json()["command"] == ["ssd-eval", "--config", "c.yaml"]
    assert [_entry(verb).inferred for verb in ("run", "resume", "score", "merge", "")] == [
        True,
        True,
        False,
        False,
        False,
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ([], "a history entry is not an object"),
        ({"finished": "b"}, "a history entry lacks or mistypes 'started'"),
        ({"started": "a"}, "a history entry lacks or mistypes 'finished'"),
        ({"started": "a", "finished": "b", "command": "ssd-eval run"}, "command: expected a list of strings"),
        (
            {"started": "a", "finished": "b", "command": ["ssd-eval", 1]},
            "command: expected a list of strings",
        ),
        ({"started": "a", "finished": "b", "images_inferred": -1}, "images_inferred and wall_s must be >= 0"),
        ({"started": "a", "finished": "b", "wall_s": -0.5}, "images_inferred and wall_s must be >= 0"),
        ({"started": "a", "finished": "b", "wall_s": "nan"}, "images_inferred and wall_s must be >= 0"),
        ({"started": "a", "finished": "b", "wall_s": "inf"}, "images_inferred and wall_s must be >= 0"),
    ],
)
def test_a_damaged_history_entry_is_one_line_naming_what_is_wrong(entry, message):
    with pytest.raises(ValueError) as caught:
        provenance_from_json(entry)
    assert str(caught.value) == message


def test_a_history_entry_at_zero_is_accepted():
    entry = provenance_from_json({"started": "a", "finished": "b", "images_inferred": 0, "wall_s": 0.0})
    assert (entry.images_inferred, entry.wall_s) == (0, 0.0)


def test_a_new_history_entry_records_this_ssd_eval_and_now(monkeypatch):
    monkeypatch.setattr(results, "utc_now", lambda: "2026-12-02T07:51:11Z")
    monkeypatch.setattr(results, "source_commit", lambda: "42051d3ab1fabfd91801c69defc6efb4c726b2c2")
    timings = {"infer": StageTiming(1.0, 333.333, 300.0, 400.0, 3)}
    entry = provenance(
        "2026-12-02T07:51:00Z",
        ["ssd-eval", "run"],
        verb="run",
        outcome="stopped",
        images_inferred=3,
        wall_s=1.23456,
        timings=timings,
        folder="results/ci",
    )
    assert entry == Provenance(
        started="2026-12-02T07:51:00Z",
        finished="2026-12-02T07:51:11Z",
        command=("ssd-eval", "run"),
        ssd_eval_version="0.1.0",
        git_commit="42051d3ab1fabfd91801c69defc6efb4c726b2c2",
        verb="run",
        outcome="stopped",
        images_inferred=3,
        wall_s=1.235,
        timings=timings,
        folder="results/ci",
    )
    assert provenance("s", ("ssd-eval", "score")) == Provenance(
        started="s",
        finished="2026-12-02T07:51:11Z",
        command=("ssd-eval", "score"),
        ssd_eval_version="0.1.0",
        git_commit="42051d3ab1fabfd91801c69defc6efb4c726b2c2",
    )


def test_now_is_utc_to_the_second_whatever_the_local_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9, no daylight saving
    time.tzset()
    try:
        before = math.floor(time.time())
        now = utc_now()
        after = time.time()
    finally:
        monkeypatch.undo()
        time.tzset()
    parsed = datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    assert len(now) == 20 and before <= parsed <= after


# --- the checkout ssd_eval runs from ---


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _package_in(root: Path, monkeypatch) -> None:
    """Make results.py believe it is imported from `root`/ssd_eval/reports/results.py."""
    monkeypatch.setattr(results, "__file__", str(root / "ssd_eval" / "reports" / "results.py"))


def test_source_commit_is_the_checkouts_head(tmp_path, monkeypatch):
    repo = tmp_path / "checkout"
    (repo / "ssd_eval" / "reports").mkdir(parents=True)
    (repo / "README.md").write_text("x\n")
    _git("init", "-q", cwd=repo)
    _git("add", "README.md", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one", cwd=repo)
    _package_in(repo, monkeypatch)
    assert source_commit() == _git("rev-parse", "HEAD", cwd=repo)


def test_source_commit_of_a_checkout_of_sha256_objects(tmp_path, monkeypatch):
    # git init --object-format=sha256: commits are named by 64 hex digits (was: None, for not being 40).
    repo = tmp_path / "checkout"
    (repo / "ssd_eval" / "reports").mkdir(parents=True)
    (repo / "README.md").write_text("x\n")
    _git("init", "-q", "--object-format=sha256", cwd=repo)
    _git("add", "README.md", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one", cwd=repo)
    _package_in(repo, monkeypatch)
    head = _git("rev-parse", "HEAD", cwd=repo)
    assert len(head) == 64 and source_commit() == head


def test_source_commit_is_none_outside_a_checkout_or_without_a_commit(tmp_path, monkeypatch):
    installed = tmp_path / "site-packages"
    _package_in(installed, monkeypatch)
    assert source_commit() is None  # an installed package: no .git
    empty = tmp_path / "empty"
    empty.mkdir()
    _git("init", "-q", cwd=empty)
    _package_in(empty, monkeypatch)
    assert source_commit() is None  # a checkout without a commit: rev-parse fails


def test_source_commit_is_none_without_git(tmp_path, monkeypatch):
    repo = tmp_path / "checkout"
    (repo / ".git").mkdir(parents=True)
    _package_in(repo, monkeypatch)
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    assert source_commit() is None


def test_source_commit_does_not_wait_for_a_git_that_hangs(tmp_path, monkeypatch):
    # A stand-in for a git that never answers (a network file system, a lock): it gives up only when
    # asked to give up after some time, as subprocess.run does with a timeout.
    repo = tmp_path / "checkout"
    (repo / ".git").mkdir(parents=True)
    _package_in(repo, monkeypatch)

    def hung_git(args, **options):
        if options.get("timeout") is None:
            raise AssertionError("would wait for git forever")
        raise subprocess.TimeoutExpired(args, options["timeout"])

    monkeypatch.setattr(results.subprocess, "run", hung_git)
    assert source_commit() is None


# --- what a run records of its model, the packages and the machine ---


def test_describe_model_by_content(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"abc")
    # sha256("abc"), FIPS 180-2's first example.
    assert describe_model(model, "ssd-10") == ModelInfo(
        str(model), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 3, "ssd-10"
    )


def _versions(installed: dict[str, str]):
    def version(name: str) -> str:
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return installed[name]

    return version


def test_package_versions_name_every_package_that_can_change_a_result(monkeypatch):
    everything = {
        "ssd_eval": "0.1.0",
        "onnxruntime": "1.32.0",
        "onnxruntime-gpu": "1.32.1",
        "onnxruntime-openvino": "1.31.0",
        "onnxruntime-directml": "1.30.0",
        "numpy": "2.4.6",
        "pillow": "13.0.0",
        "pycocotools": "2.0.11",
        "faster-coco-eval": "1.8.0",
        "opencv-python-headless": "5.0.0.93",
        "opencv-python": "5.0.0.94",
        "onnx": "1.23.2",
    }
    monkeypatch.setattr(results.platform, "python_version", lambda: "3.11.7")
    monkeypatch.setattr(results.metadata, "version", _versions(everything))
    found = package_versions()
    assert found == {"python": "3.11.7", **everything}
    assert list(found) == ["python", *everything]
    # A package that is not installed is left out, and the ones after it are still named.
    some = {"numpy": "2.4.6", "onnx": "1.23.2"}
    monkeypatch.setattr(results.metadata, "version", _versions(some))
    assert package_versions() == {"python": "3.11.7", "numpy": "2.4.6", "onnx": "1.23.2"}


def test_runtime_distributions_are_every_package_that_installs_onnxruntime(monkeypatch):
    providers = {
        "onnxruntime": ["onnxruntime-gpu", "onnxruntime", "onnxruntime-gpu", "onnxruntime-directml"],
        "numpy": ["numpy"],
    }
    monkeypatch.setattr(results.metadata, "packages_distributions", lambda: providers)
    # onnxruntime-directml's metadata is gone (a half-removed install): named by the others only.
    installed = {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.32.1", "numpy": "2.4.6"}
    monkeypatch.setattr(results.metadata, "version", _versions(installed))
    assert runtime_distributions() == ["onnxruntime 1.32.0", "onnxruntime-gpu 1.32.1"]
    monkeypatch.setattr(results.metadata, "packages_distributions", lambda: {"numpy": ["numpy"]})
    assert runtime_distributions() == []


def test_machine_info(monkeypatch):
    monkeypatch.setattr(results.platform, "platform", lambda: "Linux-6.18-x86_64-with-glibc2.36")
    monkeypatch.setattr(results.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(results.platform, "processor", lambda: "")
    monkeypatch.setattr(results.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(results.sys, "executable", "/work/venv/bin/python")
    assert machine_info() == {
        "platform": "Linux-6.18-x86_64-with-glibc2.36",
        "machine": "x86_64",
        "processor": None,  # platform.processor() is "" where it cannot tell
        "cpu_count": 2,
        "python_executable": "/work/venv/bin/python",
    }
    monkeypatch.setattr(results.platform, "processor", lambda: "x86_64")
    assert machine_info()["processor"] == "x86_64"


# --- the verdict recorded ---


def test_record_verdict_writes_the_gate_into_metrics_json(tmp_path):
    result = _result(run_dir=str(tmp_path), gate={})
    report = GateReport((check_min({"AP": 0.25}, metric="AP", floor=0.5),))
    gate = {
        "verdict": "FAIL",
        "reason": "1 of 1 rule(s) failed",
        "exit_code": 1,
        "required": False,
        "partial": None,
        "rules": [
            {
                "rule": "AP >= 0.5000",
                "state": "failed",
                "message": "AP 0.2500 is below the minimum 0.5000 by 0.2500",
                "subject": "",
            }
        ],
    }
    updated = record_verdict(result, report)
    assert updated == _result(run_dir=str(tmp_path), gate=gate)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["gate"] == gate and written["run_dir"] == str(tmp_path)
