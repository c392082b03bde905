"""Baseline files: the committed published one, reading errors, and making one from a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssd_eval.cli import main
from ssd_eval.config.run import GateConfig, load_config
from ssd_eval.errors import ConfigError, OutputError
from ssd_eval.reports.baseline import (
    baseline_from_metrics,
    load_gate_baseline,
    published_slack,
    read_baseline,
    write_baseline,
)
from ssd_eval.reports.gate import RunFacts, check_config_rules

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "results" / "baselines" / "ssd-10-published.json"
SSD10_SHA256 = "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59"


# The run behind the card's 0.195 (BowenBao/inference 88611da, onnx_result.txt), as printed there.
PUBLISHED_STATS = {
    "AP": 0.19578,
    "AP50": 0.375,
    "AP75": 0.180,
    "APs": 0.115,
    "APm": 0.256,
    "APl": 0.228,
    "AR1": 0.196,
    "AR10": 0.318,
    "AR100": 0.341,
    "ARs": 0.171,
    "ARm": 0.405,
    "ARl": 0.411,
}


def test_published_baseline_holds_the_twelve_published_figures():
    baseline = read_baseline(PUBLISHED)
    assert baseline.kind == "published"
    assert baseline.stats == PUBLISHED_STATS
    # AP is printed to 5 decimals ("Current AP: 0.19578"), the 12-stat table to 3.
    assert baseline.decimals == {"AP": 5, **{name: 3 for name in PUBLISHED_STATS if name != "AP"}}
    assert published_slack(baseline, "APs") == pytest.approx(0.0005, abs=1e-15)
    assert published_slack(baseline, "AP") == pytest.approx(0.000005, abs=1e-15)
    assert "88611da" in baseline.source and "onnx_result.txt" in baseline.source
    assert baseline.per_category == ()
    assert baseline.model["sha256"] == SSD10_SHA256 and baseline.model["size_bytes"] == 80363696
    assert baseline.protocol["selection"] == "annotated" and baseline.protocol["num_images"] == 4952
    # The packaged copy is the same file.
    packaged = REPO / "ssd_eval" / "baselines" / "ssd-10-published.json"
    assert read_baseline(packaged) == baseline


def test_a_figure_is_compared_at_its_published_precision():
    baseline = read_baseline(PUBLISHED)
    gate = GateConfig(baseline=PUBLISHED, max_baseline_drop=0.0, metric="APs")
    facts = RunFacts(
        stats={"APs": 0.1146},  # rounds to .115 as published: within half a unit of the last digit
        per_category=(),
        selection="annotated",
        num_images=4952,
        complete=True,
        model_sha256=SSD10_SHA256,
    )
    (check,) = check_config_rules(facts, gate, baseline)
    assert check.state == "passed"
    low = RunFacts(**{**facts.__dict__, "stats": {"APs": 0.1144}})  # would print as .114
    (check,) = check_config_rules(low, gate, baseline)
    assert check.state == "failed"
    assert "drops more than the allowed 0.0000 + 0.0005 (the figure's published precision)" in check.message
    # A tolerance adds to the precision: 0.1144 is within 0.001 + 0.0005 of 0.115.
    (check,) = check_config_rules(
        low, GateConfig(baseline=PUBLISHED, max_baseline_drop=0.001, metric="APs"), baseline
    )
    assert check.state == "passed"


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
    # A subset is a baseline of its own images, but an older metrics.json never recorded which.
    with pytest.raises(ConfigError, match=r"evaluated a subset \(limit 2\) and was written by an older"):
        baseline_from_metrics(_metrics(limit=2), name="m", source="runs/x")
    # A shard is a part of a whole: the baseline comes from the merge.
    with pytest.raises(
        ConfigError, match=r"^runs/x: the run is shard 1/2, a part of a whole: merge the shards"
    ):
        baseline_from_metrics(_metrics(shard="1/2"), name="m", source="runs/x")


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
    assert "ssd-10-published (published): AP 0.19578, AP50 0.375, AP75 0.180, APs 0.115" in (
        capsys.readouterr().out
    )
    assert main(["baseline", str(tmp_path), "--output", str(tmp_path / "c.json")]) == 2
    assert "no metrics.json" in capsys.readouterr().err


def _published_run(**stats: float) -> RunFacts:
    return RunFacts(
        stats=stats,
        per_category=(),
        selection="annotated",
        num_images=4952,
        complete=True,
        model_sha256=SSD10_SHA256,
    )


def test_baseline_stats_hold_each_figure_both_ways():
    baseline = read_baseline(PUBLISHED)
    four = ("AP", "APs", "APm", "APl")
    gate = GateConfig(baseline=PUBLISHED, baseline_stats=four, baseline_tolerance=0.001)
    # onnx/models #165's independent reproduction: AP .196, APs .114, APm .256, APl .227.
    checks = check_config_rules(_published_run(AP=0.196, APs=0.114, APm=0.256, APl=0.227), gate, baseline)
    assert [c.rule for c in checks] == [
        "AP = 0.19578 ± 0.0010 + 5e-06",
        "APs = 0.1150 ± 0.0010 + 0.0005",
        "APm = 0.2560 ± 0.0010 + 0.0005",
        "APl = 0.2280 ± 0.0010 + 0.0005",
    ]
    assert [c.state for c in checks] == ["passed"] * 4
    assert (
        checks[1].message == "APs 0.1140 is within 0.0015 of baseline ssd-10-published 0.1150 (delta -0.0010)"
    )
    # MLPerf's upscaled coco-1200 ground truth (mlcommons/inference #657): AP .196, APs .038,
    # APm .172, APl .246: the size split is off both ways while AP is not.
    checks = check_config_rules(_published_run(AP=0.196, APs=0.038, APm=0.172, APl=0.246), gate, baseline)
    assert [c.state for c in checks] == ["passed", "failed", "failed", "failed"]
    assert checks[3].message == (
        "APl 0.2460 misses baseline ssd-10-published 0.2280 by +0.0180 (tolerance 0.0015)"
    )
    # Another model is not comparable to them.
    other = RunFacts(**{**_published_run(AP=0.2).__dict__, "model_sha256": "0" * 64})
    assert {c.state for c in check_config_rules(other, gate, baseline)} == {"not comparable"}


def test_baseline_stats_are_checked_with_the_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"gate: {{baseline: {PUBLISHED}, baseline_stats: [AP, mAP]}}\n")
    with pytest.raises(ConfigError, match=r"gate.baseline_stats\[1\]: must be one of AP"):
        load_config(config)
    config.write_text("gate: {baseline_stats: [AP]}\n")
    with pytest.raises(ConfigError, match=r"gate\.baseline: set a baseline file"):
        load_config(config)
    measured = tmp_path / "b.json"
    write_baseline(measured, baseline_from_metrics(_metrics(), name="m", source="x"))
    data = json.loads(measured.read_text())
    data["stats"] = {"AP": 0.5}
    measured.write_text(json.dumps(data))
    gate = GateConfig(baseline=measured, baseline_stats=("AP", "APs"))
    with pytest.raises(ConfigError, match=r"c.yaml: gate.baseline_stats\[1\]: baseline .* has no APs"):
        load_gate_baseline(gate, where="c.yaml")


def test_baseline_show_lines_of_a_measured_baseline_by_hand():
    """`ssd-eval baseline --show`, every kind of recorded fact as a person reads it (written out here,
    not derived from the code): null, true/false, a size as WxH, a list, a mapping, thousands, a sha256."""
    from ssd_eval.reports.baseline import Baseline, baseline_lines

    baseline = Baseline(
        name="ci-200",
        kind="measured",
        source="results/ci-reference",
        stats={"AP": 0.19575, "AP50": 0.5},
        protocol={"selection": "annotated", "num_images": 4952, "limit": None, "clip_boxes": False},
        model={
            "name": "ssd-10.onnx",
            "sha256": "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59",
        },
        created="2026-12-02",
        note="why",
        extra={
            "input_size": [1200, 600],
            "providers": ["CPUExecutionProvider", "CUDAExecutionProvider"],
            "versions": {"onnxruntime": "1.32.0", "required": True},
        },
    )
    assert baseline_lines(baseline) == [
        "ci-200 (measured): AP 0.1958, AP50 0.5000",
        "protocol   selection annotated, num_images 4,952, limit null, clip_boxes false",
        "model      ssd-10.onnx, sha256 80013dd940ef…",
        "source     results/ci-reference",
        "created    2026-12-02",
        "note       why",
        "input_size 1200x600",
        "providers  CPUExecutionProvider, CUDAExecutionProvider",
        "versions   onnxruntime 1.32.0, required true",
    ]


def _utc_window(monkeypatch):
    """Run in a time zone 9 hours from UTC (Asia/Tokyo, no daylight saving) to tell UTC from local time."""
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    return time


def test_a_measured_baseline_holds_what_the_run_recorded_by_hand(monkeypatch):
    from datetime import datetime, timezone

    from ssd_eval.evaluation.scoring import CategoryScore
    from ssd_eval.reports.baseline import Baseline

    metrics = _metrics(preprocess="pillow", clip_boxes=True, score_threshold=0.05)
    metrics["versions"] = {"onnxruntime": "1.32.0"}
    clock = _utc_window(monkeypatch)
    try:
        before = int(clock.time())
        baseline = baseline_from_metrics(metrics, name="m", source="runs/x")
        after = clock.time()
    finally:
        monkeypatch.undo()
        clock.tzset()
    created = datetime.strptime(baseline.created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert len(baseline.created) == 20 and before <= created.timestamp() <= after  # UTC, to the second
    assert baseline == Baseline(
        name="m",
        kind="measured",
        source="runs/x",
        stats=dict.fromkeys(PUBLISHED_STATS, 0.5),
        protocol={
            "selection": "annotated",
            "num_images": 5,
            "input_size": [32, 32],
            "preprocess": "pillow",
            "clip_boxes": True,
            "score_threshold": 0.05,
        },
        model={"name": "m.onnx", "sha256": "abc", "size_bytes": 10},
        per_category=(CategoryScore(1, "person", 0.4, 0.6, 3, 9),),
        created=baseline.created,
        note="",
        extra={"providers_used": ["CPUExecutionProvider"], "versions": {"onnxruntime": "1.32.0"}},
    )


def test_a_measured_baseline_from_a_metrics_json_without_the_optional_keys():
    metrics = _metrics()
    for key in ("per_category", "providers_used"):
        del metrics[key]
    del metrics["model"]["size_bytes"]
    baseline = baseline_from_metrics(metrics, name="m", source="runs/x", note="first")
    assert baseline.per_category == () and baseline.note == "first"
    assert baseline.extra == {"providers_used": [], "versions": {}}
    assert baseline.model == {"name": "m.onnx", "sha256": "abc", "size_bytes": None}
    assert baseline.protocol["preprocess"] is None and baseline.protocol["clip_boxes"] is None
    assert (
        baseline_from_metrics(
            {**metrics, "protocol": {**metrics["protocol"], "input_size": None}}, name="m", source="x"
        ).protocol["input_size"]
        is None
    )


def test_a_metrics_json_that_cannot_make_a_baseline_is_one_line():
    damaged = _metrics()
    del damaged["model"]
    with pytest.raises(ConfigError) as caught:
        baseline_from_metrics(damaged, name="m", source="runs/x")
    assert str(caught.value) == (
        "runs/x: metrics.json lacks or mistypes 'model' (damaged?); score the run again with "
        "`ssd-eval score RUN_DIR`"
    )
    with pytest.raises(ConfigError) as caught:
        baseline_from_metrics(_metrics(shard="1/2"), name="m", source="runs/x")
    assert str(caught.value) == (
        "runs/x: the run is shard 1/2, a part of a whole: merge the shards with `ssd-eval merge` and make "
        "the baseline from the merged folder"
    )
    with pytest.raises(ConfigError) as caught:
        baseline_from_metrics(_metrics(limit=2), name="m", source="runs/x")
    assert str(caught.value) == (
        "runs/x: the run evaluated a subset (limit 2) and was written by an older ssd_eval, which did not "
        "record its identity: re-score it with `ssd-eval score` first"
    )
    with pytest.raises(ConfigError) as caught:
        baseline_from_metrics({**_metrics(), "identity": {"schema": "other"}}, name="m", source="runs/x")
    assert str(caught.value) == (
        'runs/x: metrics.json identity: not a run identity (expected "schema": "ssd_eval.identity/1"); '
        "re-score the run with `ssd-eval score`"
    )


def test_baseline_show_lines_of_a_measured_baseline_with_an_identity():
    from helpers import make_identity

    from ssd_eval.evaluation.scoring import CategoryScore
    from ssd_eval.reports.baseline import Baseline, baseline_lines

    baseline = Baseline(
        name="tiny",
        kind="measured",
        source="results/first",
        stats={"AP": 0.5},
        protocol={},
        model={"sha256": SSD10_SHA256},
        per_category=(CategoryScore(1, "person", 0.5, 0.5, 3, 3), CategoryScore(18, "dog", 0.5, 0.5, 2, 2)),
        extra={"model": {"sha256": SSD10_SHA256, "input_size": [1200, 1200]}},
        identity=make_identity(range(1, 6)),
    )
    # The ids' digest: sha256 of "1,2,3,4,5" (the identity's rule: ascending, comma-separated).
    assert baseline_lines(baseline) == [
        "tiny (measured): AP 0.5000",
        "protocol   ",
        "model      unnamed, sha256 80013dd940ef…",
        "images     5 (annotated, ids sha256 b726eed184ce…); holds any later run of these images and ground "
        "truth",
        "source     results/first",
        "per-class  AP of 2 categories",
        "model      sha256 80013dd940ef…, input_size 1200x1200",
    ]


# --- reading a baseline file: every refusal one whole line naming the file and the key ---

ADVICE = "make it again with `ssd-eval baseline RUN_DIR --output FILE`"


def _refusal(tmp_path: Path, content: object) -> str:
    path = tmp_path / "b.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError) as caught:
        read_baseline(path)
    return str(caught.value).replace(str(path), "B")


def _published_json() -> dict:
    return json.loads(PUBLISHED.read_text())


def test_a_baseline_file_that_is_not_there_or_not_text(tmp_path):
    missing = tmp_path / "none.json"
    with pytest.raises(ConfigError) as caught:
        read_baseline(missing)
    assert str(caught.value) == (
        f"baseline file {missing} not found: set gate.baseline to a file made with "
        "`ssd-eval baseline RUN_DIR --output FILE` (committed ones are in results/baselines/)"
    )
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff")
    with pytest.raises(ConfigError) as caught:
        read_baseline(binary)
    assert str(caught.value) == f"{binary}: not UTF-8 text (byte 0); {ADVICE}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": None}, 'B: not an ssd_eval baseline (expected "schema": "ssd_eval.baseline/1")'),
        ({"name": 1}, "B: name: missing or not a str"),
        ({"protocol": []}, "B: protocol: missing or not a dict"),
        ({"stats": {"AP": "0.2"}}, "B: stats.AP: expected a COCO stat name with a number"),
        ({"stats": {"AP": True}}, "B: stats.AP: expected a COCO stat name with a number"),
        ({"stats": {"AP": 1.5}}, "B: stats.AP: expected a value in [0, 1] (-1: no data), got 1.5"),
        ({"stats": {"AP": -1.5}}, "B: stats.AP: expected a value in [0, 1] (-1: no data), got -1.5"),
        (
            {"per_category": [{"category_id": 1}]},
            "B: per_category: CategoryScore.__init__() missing 5 required positional arguments: 'name', "
            "'ap', 'ap50', 'num_gt', and 'num_det'",
        ),
        ({"model": "ssd-10.onnx"}, "B: model: expected a mapping"),
        ({"decimals": [3]}, "B: decimals: expected a mapping of stat name to a number of decimals"),
    ],
)
def test_a_damaged_baseline_file_is_one_line(tmp_path, change, message):
    assert _refusal(tmp_path, {**_published_json(), **change}) == message


@pytest.mark.parametrize("places", [-1, 13, 2.5, True, "3"])
def test_decimals_are_whole_numbers_from_0_to_12(tmp_path, places):
    content = {**_published_json(), "decimals": {"AP": places}}
    assert _refusal(tmp_path, content) == (
        "B: decimals.AP: expected a stat of `stats` with a whole number of decimals (0-12)"
    )


def test_decimals_only_for_the_stats_given(tmp_path):
    content = {**_published_json(), "stats": {"AP": 0.195}, "decimals": {"AP": 3, "AR1": 3}}
    assert _refusal(tmp_path, content) == (
        "B: decimals.AR1: expected a stat of `stats` with a whole number of decimals (0-12)"
    )


def test_the_edges_of_what_a_baseline_file_may_hold(tmp_path):
    path = tmp_path / "b.json"
    # -1 (no data) and 1 are stats; 0 and 12 decimals are numbers of decimals.
    stats = {"AP": 1.0, "APs": -1.0, "AR1": 0.0}
    content = {**_published_json(), "stats": stats, "decimals": {"AP": 0, "AR1": 12}}
    path.write_text(json.dumps(content))
    baseline = read_baseline(path)
    assert (baseline.stats, baseline.decimals) == (stats, {"AP": 0, "AR1": 12})
    # model and decimals are optional: none recorded.
    bare = {k: v for k, v in content.items() if k not in ("model", "decimals")}
    path.write_text(json.dumps(bare))
    assert (read_baseline(path).model, read_baseline(path).decimals) == ({}, {})


def _identity_without_ids():
    """The identity of a run of images 1..5 as a baseline records it: the ids' digest, not the ids."""
    from dataclasses import replace

    from helpers import make_identity

    identity = make_identity(range(1, 6))
    return replace(identity, images=replace(identity.images, image_ids=()))


def test_a_measured_baseline_with_an_identity_is_written_and_read_back(tmp_path):
    identity = _identity_without_ids()
    baseline = baseline_from_metrics(
        {**_metrics(), "identity": identity.to_json(with_ids=False)}, name="m", source="runs/x"
    )
    assert baseline.identity == identity
    data = baseline.to_json()
    # The ids stay in the run's identity.json: a baseline records their digest, sha256("1,2,3,4,5").
    assert data["identity"]["images"]["image_ids"] == []
    assert data["identity"]["images"]["digest"] == (
        "b726eed184cea30d5a57fb645f77527e4232bec085e24e8d29a6e3b2c84c2db1"
    )
    path = tmp_path / "m.json"
    write_baseline(path, baseline)
    assert read_baseline(path) == baseline and read_baseline(path).identity == identity
    # A baseline made in Python from a run's whole identity records the digest only, too.
    from dataclasses import replace

    from helpers import make_identity

    whole = replace(baseline, identity=make_identity(range(1, 6)))
    assert whole.to_json()["identity"] == data["identity"]


def test_a_baseline_is_written_into_new_folders_and_refuses_what_it_cannot_write(tmp_path):
    baseline = read_baseline(PUBLISHED)
    nested = tmp_path / "results" / "baselines" / "copy.json"
    write_baseline(nested, baseline)
    assert read_baseline(nested) == baseline
    with pytest.raises(OutputError) as caught:
        write_baseline(nested, baseline)
    assert str(caught.value) == (
        f"baseline file {nested} already exists: choose another --output or pass --overwrite"
    )
    (tmp_path / "plain").write_text("a file, not a folder")
    inside = tmp_path / "plain" / "b.json"
    with pytest.raises(OutputError) as caught:
        write_baseline(inside, baseline)
    assert str(caught.value) == f"cannot write baseline file {inside}: File exists"


def test_the_digest_of_a_baseline_is_the_sha256_of_its_canonical_json():
    import hashlib

    from ssd_eval.reports.baseline import Baseline, baseline_digest

    baseline = Baseline(name="b", kind="published", source="s", stats={"AP": 0.5}, protocol={}, model={})
    # Sorted keys, no spaces: written out by hand.
    canonical = (
        '{"created":"","decimals":{},"extra":{},"identity":null,"kind":"published","model":{},"name":"b",'
        '"note":"","per_category":[],"protocol":{},"schema":"ssd_eval.baseline/1","source":"s",'
        '"stats":{"AP":0.5}}'
    )
    assert baseline_digest(baseline) == hashlib.sha256(canonical.encode("ascii")).hexdigest()


# --- the baseline a gate section names, checked against its rules before any model loads ---


def _measured_file(tmp_path: Path, name: str = "measured", **changes: object) -> Path:
    path = tmp_path / f"{name}.json"
    data = baseline_from_metrics(_metrics(), name="m", source="x").to_json()
    path.write_text(json.dumps({**data, **changes}))
    return path


def _gate_refusal(gate: GateConfig, key: str = "gate") -> str:
    with pytest.raises(ConfigError) as caught:
        load_gate_baseline(gate, where="c.yaml", key=key)
    return str(caught.value)


def test_a_per_class_rule_needs_a_baseline_with_per_category_ap(tmp_path):
    assert _gate_refusal(GateConfig(baseline=PUBLISHED, max_class_baseline_drop=0.01)) == (
        f"c.yaml: gate.max_class_baseline_drop: baseline {PUBLISHED} has no per-category AP (published "
        "figures); use a measured baseline (`ssd-eval baseline RUN_DIR`) or remove the rule"
    )
    # Without the rule, the published figures serve; a measured baseline serves the rule.
    assert load_gate_baseline(GateConfig(baseline=PUBLISHED), where="c.yaml") == read_baseline(PUBLISHED)
    measured = _measured_file(tmp_path)
    gate = GateConfig(baseline=measured, max_class_baseline_drop=0.01)
    assert load_gate_baseline(gate, where="c.yaml") == read_baseline(measured)
    assert load_gate_baseline(GateConfig(), where="c.yaml") is None


def test_a_drop_rule_needs_the_metric_in_the_baseline(tmp_path):
    few = _measured_file(tmp_path, "few", stats={"AP": 0.5, "AR100": 0.6})
    gate = GateConfig(baseline=few, metric="AP50", max_baseline_drop=0.01)
    assert _gate_refusal(gate, key="compare.gate") == (
        f"c.yaml: compare.gate.metric: baseline {few} has no AP50 (it has AP, AR100)"
    )
    none = _measured_file(tmp_path, "none", stats={})
    assert _gate_refusal(GateConfig(baseline=none, max_baseline_drop=0.01)) == (
        f"c.yaml: gate.metric: baseline {none} has no AP (it has no stats)"
    )
    # No drop rule: the metric is not read from the baseline.
    assert load_gate_baseline(GateConfig(baseline=few, metric="AP50", min_ap=0.1), where="c.yaml") is not None
    assert _gate_refusal(GateConfig(baseline=none, baseline_stats=("AP",))) == (
        f"c.yaml: gate.baseline_stats[0]: baseline {none} has no AP (it has no stats)"
    )


def test_baseline_stats_naming_a_stat_the_baseline_lacks_lists_the_ones_it_has(tmp_path):
    few = _measured_file(tmp_path, "few", stats={"AP": 0.5, "AR100": 0.6})
    assert _gate_refusal(GateConfig(baseline=few, baseline_stats=("AP", "APs"))) == (
        f"c.yaml: gate.baseline_stats[1]: baseline {few} has no APs (it has AP, AR100)"
    )


def test_a_baseline_with_a_damaged_identity_is_one_line(tmp_path):
    content = {**_published_json(), "identity": {"schema": "nonsense"}}
    line = _refusal(tmp_path, content)
    assert line.startswith("B: identity: ") and line.endswith(
        "; remake the baseline with `ssd-eval baseline`"
    )
    assert len(line.splitlines()) == 1


def test_created_and_note_are_empty_when_a_baseline_file_has_none(tmp_path):
    path = tmp_path / "b.json"
    bare = {k: v for k, v in _published_json().items() if k not in ("created", "note")}
    path.write_text(json.dumps(bare))
    baseline = read_baseline(path)
    assert (baseline.created, baseline.note) == ("", "")
