"""Old run folders keep working: a folder written by the previous main still scores, compares and merges.

tests/data/legacy_v1 holds run folders written by ssd_eval at commit 42051d3 (made by
scripts/make_legacy_fixture.py, see its MANIFEST.json): `run-a` (gated by `expected` and a baseline,
one image skipped), `run-b` (another detector on the same images) and the two shards `shard-1of2`,
`shard-2of2` of run-a's config. Only the run folders are stored: the images, annotation file and
detectors are rebuilt here by tests/legacy_data.py, and the folders' @DATA@ / @MODELS@ / @RESULTS@ /
@CONFIGS@ placeholders are pointed at them. Today's code must then re-score, compare and merge those
folders to the numbers they recorded.

When a record's shape changes, an old folder may instead be refused, with one line saying how to
re-make it (exit 2) — but only for a kind listed in REFUSED_LEGACY, so that refusing old folders
is a decision someone wrote down, not an accident. The top-level keys of metrics.json and
run_info.json are pinned below; a key whose type changes (or that goes) is listed in
LEGACY_KEY_CHANGES with the reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import make_coco, save_table_detector, write_config
from legacy_data import AP_A, AP_B, DETECTOR_A, GT, IMAGES, LegacyData, build

from ssd_eval.cli import main

FIXTURE = Path(__file__).resolve().parent / "data" / "legacy_v1"
MANIFEST = json.loads((FIXTURE / "MANIFEST.json").read_text(encoding="utf-8"))
RUNS = ("run-a", "run-b", "shard-1of2", "shard-2of2")

# What a legacy folder is used for, by the command that reads it.
LEGACY_KINDS = ("score", "compare", "merge")
# The kinds today's code may refuse, with one line saying how to re-make the folder. Empty: every
# legacy folder must still work. Add a kind here only on purpose, when its old folders cannot be read.
REFUSED_LEGACY: set[str] = set()

# The top-level keys of metrics.json and run_info.json as the code at the fixture's commit wrote them,
# with their JSON types ("a|b": either).
PINNED_METRICS_KEYS = {
    "config": "object",
    "diagnosis": "null|object",  # null in every fixture folder: no run missed its reference
    "gate": "object",
    "images_per_s": "number",
    "machine": "object",
    "model": "object",
    "num_detections": "number",
    "per_category": "array",
    "protocol": "object",
    "provenance": "object",
    "provider_options": "array",
    "providers_requested": "array",
    "providers_used": "array",
    "run_dir": "string",
    "skipped_images": "array",
    "stats": "object",
    "timings": "object",
    "versions": "object",
    "wall_s": "number",
    "warnings": "array",
}
PINNED_RUN_INFO_KEYS = {
    "input_size": "array",
    "model": "object",
    "provider_options": "array",
    "providers_requested": "array",
    "providers_used": "array",
    "shard": "null|string",  # null in a whole run, "K/N" in a shard
}
# "metrics.json:<key>" or "run_info.json:<key>" -> why its type changed (or it went), and how old
# folders are still read. Empty: every pinned key is still written with its type.
LEGACY_KEY_CHANGES: dict[str, str] = {}


def _placeholders(data: LegacyData, folder: Path, configs: Path) -> dict[str, str]:
    return {
        "@DATA@": str(data.coco),
        "@MODELS@": str(data.models),
        "@RESULTS@": str(folder),
        "@CONFIGS@": str(configs),
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> LegacyData:
    built = build(tmp_path_factory.mktemp("legacy_data"))
    annotations = "coco/annotations/instances_val2017.json"
    assert built.files()[annotations] == MANIFEST["data_sha256"][annotations], (
        "tests/legacy_data.py no longer writes the annotation file the fixture was scored on; "
        "restore it (or re-make the fixture with scripts/make_legacy_fixture.py at the old commit)"
    )
    return built


@pytest.fixture
def legacy(tmp_path, data) -> Path:
    """A fresh copy of the fixture whose placeholders name this test's data, models and folder."""
    folder = tmp_path / "legacy"
    replace = _placeholders(data, folder, tmp_path / "configs")
    for source in sorted(FIXTURE.rglob("*")):
        target = folder / source.relative_to(FIXTURE)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8")
        for placeholder, real in replace.items():
            text = text.replace(placeholder, real)
        target.write_text(text, encoding="utf-8")
    return folder


def _metrics(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))


def _recorded(name: str) -> dict[str, Any]:
    """A fixture folder's metrics.json as the legacy code wrote it."""
    return _metrics(FIXTURE / name)


def _cli(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main([*argv, "--quiet"])
    return code, capsys.readouterr().err


# -- the refusal path --------------------------------------------------------------------------------


def assert_refused_with_remake_line(code: int, err: str) -> None:
    """An old folder refused as promised: exit 2 and exactly one line on stderr saying how to re-make it."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"a refused legacy folder exits 2, got {code}: {err}"
    assert len(lines) == 1, f"a refused legacy folder gets one line on stderr, got {len(lines)}: {err}"
    how = lines[0].replace("rerun with --debug", "")  # the internal error's hint re-makes nothing
    assert re.search(r"\bre-?(run|make|score)\b", how, re.IGNORECASE), (
        f"the refusal does not say how to re-make the folder: {lines[0]}"
    )


def _handled(kind: str, code: int, err: str) -> bool:
    """True when today's code read the legacy folder; False when it refused it as REFUSED_LEGACY allows."""
    assert kind in LEGACY_KINDS
    if code == 0:
        return True
    if kind not in REFUSED_LEGACY:
        pytest.fail(f"`ssd-eval {kind}` of a legacy_v1 folder exits {code} (expected 0):\n{err}")
    assert_refused_with_remake_line(code, err)
    return False


def test_refused_kinds_are_known_kinds():
    assert set(REFUSED_LEGACY) <= set(LEGACY_KINDS)


# -- the legacy folders, read by today's code --------------------------------------------------------


def test_the_synthetic_data_regenerates_byte_for_byte(data):
    # A drift here (e.g. new preprocessing re-keys the table detectors) does not break scoring, which
    # reads only the annotation file, but the folders' recorded model sha256 would no longer hold.
    assert data.files() == MANIFEST["data_sha256"]


def test_the_fixture_is_the_hand_counted_runs():
    stats = {name: _recorded(name)["stats"]["AP"] for name in RUNS}
    assert stats["run-a"] == pytest.approx(AP_A, abs=1e-12)  # 73/101, see legacy_data
    assert stats["run-b"] == pytest.approx(AP_B, abs=1e-12)  # 185/202
    assert MANIFEST["ssd_eval_commit"] == "42051d3ab1fabfd91801c69defc6efb4c726b2c2"


@pytest.mark.parametrize("name", RUNS)
def test_score_reproduces_the_recorded_stats(legacy, name, capsys):
    run_dir = legacy / name
    # --require-gate: the rules recorded in the old config.yaml (expected, and run-a's baseline via its
    # gate_baseline.json) must still be found and pass; losing them would be NO VERDICT, exit 1.
    code, err = _cli(capsys, "score", str(run_dir), "--require-gate")
    if not _handled("score", code, err):
        return
    recorded, now = _recorded(name), _metrics(run_dir)
    assert now["stats"] == recorded["stats"]  # exactly
    assert now["per_category"] == recorded["per_category"]
    assert now["num_detections"] == recorded["num_detections"]
    # A folder without a history: its inference timings, wall time and throughput are those its old
    # metrics.json recorded (only the scoring is new).
    assert now["wall_s"] == recorded["wall_s"] and now["images_per_s"] == recorded["images_per_s"]
    assert {k: v for k, v in now["timings"].items() if k != "score"} == {
        k: v for k, v in recorded["timings"].items() if k != "score"
    }


def test_compare_gives_the_recorded_ap(legacy, tmp_path, capsys):
    code, err = _cli(
        capsys, "compare", str(legacy / "run-a"), str(legacy / "run-b"),
        "--output", str(tmp_path / "compare"), "--run-name", "ab", "--max-ap-drop", "0.0", "--require-gate",
    )  # fmt: skip
    if not _handled("compare", code, err):
        return
    reference, run = _metrics(tmp_path / "compare" / "ab")["runs"]
    assert (reference["name"], run["name"]) == ("run-a", "run-b")
    assert run["stats"]["AP"] == _recorded("run-b")["stats"]["AP"]
    assert reference["stats"]["AP"] == _recorded("run-a")["stats"]["AP"]
    assert run["deltas"]["AP"] == pytest.approx(AP_B - AP_A, abs=1e-12)


def test_merge_equals_the_unsharded_run(legacy, tmp_path, capsys):
    merged = tmp_path / "merged"
    # --require-gate: `expected`, deferred by the shards, applies to the merge and must pass.
    code, err = _cli(
        capsys, "merge", str(legacy / "shard-2of2"), str(legacy / "shard-1of2"), "--output", str(merged),
        "--require-gate",
    )  # fmt: skip
    if not _handled("merge", code, err):
        return
    whole, now = _recorded("run-a"), _metrics(merged)
    assert now["stats"] == whole["stats"]  # exactly
    assert now["per_category"] == whole["per_category"]
    assert now["num_detections"] == whole["num_detections"]


# -- today's keys, pinned ----------------------------------------------------------------------------


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _key_problems(file: str, data: dict[str, Any], pinned: dict[str, str]) -> list[str]:
    problems = []
    for key, types in pinned.items():
        if f"{file}:{key}" in LEGACY_KEY_CHANGES:
            continue
        if key not in data:
            problems.append(f"{file}: {key} is no longer written")
        elif _json_type(data[key]) not in types.split("|"):
            problems.append(f"{file}: {key} is a {_json_type(data[key])}, was {types}")
    return problems


def test_pinned_keys_are_the_fixtures():
    for name in RUNS:
        for file, pinned in (("metrics.json", PINNED_METRICS_KEYS), ("run_info.json", PINNED_RUN_INFO_KEYS)):
            data = json.loads((FIXTURE / name / file).read_text(encoding="utf-8"))
            assert sorted(data) == sorted(pinned), f"{name}/{file}"
            assert not _key_problems(file, data, pinned)
    assert list(PINNED_METRICS_KEYS) == sorted(PINNED_METRICS_KEYS)
    assert list(PINNED_RUN_INFO_KEYS) == sorted(PINNED_RUN_INFO_KEYS)


def test_key_changes_name_pinned_keys_with_a_reason():
    pinned = {f"metrics.json:{k}" for k in PINNED_METRICS_KEYS} | {
        f"run_info.json:{k}" for k in PINNED_RUN_INFO_KEYS
    }
    for key, reason in LEGACY_KEY_CHANGES.items():
        assert key in pinned, f"LEGACY_KEY_CHANGES names {key}, which is not a pinned key"
        assert isinstance(reason, str) and reason.strip(), f"LEGACY_KEY_CHANGES[{key!r}] needs a reason"


def test_a_run_today_writes_every_pinned_key(tmp_path):
    images = IMAGES[:3]
    coco = make_coco(tmp_path / "coco", images, {i.image_id: GT[i.image_id] for i in images})
    model = save_table_detector(tmp_path / "model.onnx", coco, DETECTOR_A)
    config = write_config(tmp_path / "now.yaml", model, coco)
    assert main(["--config", str(config), "--run-name", "now", "--quiet"]) == 0
    run_dir = tmp_path / "results" / "now"
    problems = []
    for file, pinned in (("metrics.json", PINNED_METRICS_KEYS), ("run_info.json", PINNED_RUN_INFO_KEYS)):
        problems += _key_problems(file, json.loads((run_dir / file).read_text(encoding="utf-8")), pinned)
    assert not problems, "list each in LEGACY_KEY_CHANGES with the reason:\n" + "\n".join(problems)
