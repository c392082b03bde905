"""Baseline files: the stored figures a gate compares a run against.

A baseline is either *published* (figures copied from a model card or paper, only what it states)
or *measured* (made from a run's metrics.json with `ssd-eval baseline`, with all 12 COCO stats and
per-category AP). Either way it records the protocol (which images) and the model's sha256, so a
comparison with a run of another protocol is refused instead of silently meaningless.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ssd_eval.coco_stats import STAT_NAMES
from ssd_eval.config.run import GateConfig
from ssd_eval.config.strict_load import read_json_file
from ssd_eval.errors import ConfigError, OutputError
from ssd_eval.evaluation.identity import IdentityFormatError, RunIdentity, identity_from_json
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.files import sha256_bytes, write_json_atomic

log = logging.getLogger(__name__)

SCHEMA = "ssd_eval.baseline/1"
Kind = Literal["published", "measured"]


@dataclass(frozen=True)
class Baseline:
    """Reference figures with the protocol and model they belong to."""

    name: str
    kind: Kind
    source: str  # where the figures come from: a URL, or the run folder they were made from
    stats: dict[str, float]  # a subset of the 12 COCO stats (published: only what the card states)
    protocol: dict[str, Any]  # selection, num_images, dataset, input_size, ...
    model: dict[str, Any]  # name, sha256, size_bytes
    per_category: tuple[CategoryScore, ...] = ()
    created: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # providers, versions: context, never gated
    # Published figures: how many decimals each stat was published with (.115 -> 3); a rule allows
    # half a unit of that last digit besides its tolerance. Measured figures: empty (exact).
    decimals: dict[str, int] = field(default_factory=dict)
    # The identity of the run a measured baseline was made from (its image ids as a digest): the
    # baseline holds any later run of the same ground truth and images. None: published figures, or a
    # baseline made by an older ssd_eval (it holds runs of the whole selection only).
    identity: RunIdentity | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema": SCHEMA, **asdict(self)}
        data["identity"] = self.identity.to_json(with_ids=False) if self.identity is not None else None
        return data


def read_baseline(path: Path) -> Baseline:
    """Read and check a baseline file; a bad one is a ConfigError naming the file and the key."""
    if not path.is_file():
        raise ConfigError(
            f"baseline file {path} not found: set gate.baseline to a file made with "
            "`ssd-eval baseline RUN_DIR --output FILE` (committed ones are in results/baselines/)"
        )
    data = read_json_file(path, advice="make it again with `ssd-eval baseline RUN_DIR --output FILE`")
    return baseline_from_json(data, where=str(path))


def baseline_from_json(data: object, *, where: str) -> Baseline:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ConfigError(f'{where}: not an ssd_eval baseline (expected "schema": "{SCHEMA}")')
    for key, kind in (("name", str), ("kind", str), ("source", str), ("stats", dict), ("protocol", dict)):
        if not isinstance(data.get(key), kind):
            raise ConfigError(f"{where}: {key}: missing or not a {kind.__name__}")
    if data["kind"] not in ("published", "measured"):
        raise ConfigError(f"{where}: kind: must be 'published' or 'measured', got {data['kind']!r}")
    stats: dict[str, float] = {}
    for name, value in data["stats"].items():
        if name not in STAT_NAMES or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: stats.{name}: expected a COCO stat name with a number")
        if not (math.isfinite(value) and -1.0 <= value <= 1.0):
            raise ConfigError(f"{where}: stats.{name}: expected a value in [0, 1] (-1: no data), got {value}")
        stats[name] = float(value)
    try:
        per_category = tuple(CategoryScore(**c) for c in data.get("per_category", []))
    except TypeError as exc:
        raise ConfigError(f"{where}: per_category: {exc}") from None
    model = data.get("model", {})
    if not isinstance(model, dict):
        raise ConfigError(f"{where}: model: expected a mapping")
    decimals = data.get("decimals", {})
    if not isinstance(decimals, dict):
        raise ConfigError(f"{where}: decimals: expected a mapping of stat name to a number of decimals")
    for name, places in decimals.items():
        whole = isinstance(places, int) and not isinstance(places, bool)
        if name not in stats or not whole or not 0 <= places <= 12:
            raise ConfigError(
                f"{where}: decimals.{name}: expected a stat of `stats` with a whole number of decimals (0-12)"
            )
    identity = None
    if data.get("identity") is not None:
        try:
            identity = identity_from_json(data["identity"])
        except IdentityFormatError as exc:
            raise ConfigError(
                f"{where}: identity: {exc}; remake the baseline with `ssd-eval baseline`"
            ) from None
    return Baseline(
        name=data["name"],
        kind=data["kind"],
        source=data["source"],
        stats=stats,
        protocol=dict(data["protocol"]),
        model=dict(model),
        per_category=per_category,
        created=str(data.get("created", "")),
        note=str(data.get("note", "")),
        extra=dict(data.get("extra", {})),
        decimals=dict(decimals),
        identity=identity,
    )


def baseline_digest(baseline: Baseline) -> str:
    """The sha256 of a baseline's content (not its bytes: the copy a run folder keeps is the same
    baseline); what a run identity records of the baseline it is gated against."""
    # Read from a file that refuses NaN and Infinity (strict_load), a baseline's numbers are finite;
    # json.dumps escapes every non-ASCII character, so the text is ASCII.
    text = json.dumps(baseline.to_json(), sort_keys=True, separators=(",", ":"))
    return sha256_bytes(text.encode())


def published_slack(baseline: Baseline, stat: str) -> float:
    """Half a unit of the last digit `stat` was published with (0.0005 for .115); 0 when exact."""
    places = baseline.decimals.get(stat)
    return 0.0 if places is None else 0.5 * 10.0**-places


def baseline_from_metrics(metrics: Mapping[str, Any], *, name: str, source: str, note: str = "") -> Baseline:
    """A measured baseline from a run's metrics.json (or one run of a comparison's); a metrics file
    that lacks or mistypes what a baseline needs is one ConfigError naming it."""
    try:
        return _measured_baseline(metrics, name=name, source=source, note=note)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise ConfigError(
            f"{source}: metrics.json lacks or mistypes {exc} (damaged?); score the run again with "
            "`ssd-eval score RUN_DIR`"
        ) from None


def _measured_baseline(metrics: Mapping[str, Any], *, name: str, source: str, note: str) -> Baseline:
    protocol = metrics["protocol"]
    if protocol.get("shard"):
        raise ConfigError(
            f"{source}: the run is shard {protocol['shard']}, a part of a whole: merge the shards with "
            "`ssd-eval merge` and make the baseline from the merged folder"
        )
    identity = None
    if metrics.get("identity") is not None:
        try:
            identity = identity_from_json(metrics["identity"])
        except IdentityFormatError as exc:
            raise ConfigError(
                f"{source}: metrics.json identity: {exc}; re-score the run with `ssd-eval score`"
            ) from None
    elif protocol.get("limit") is not None:
        raise ConfigError(
            f"{source}: the run evaluated a subset (limit {protocol['limit']}) and was written by an older "
            "ssd_eval, which did not record its identity: re-score it with `ssd-eval score` first"
        )
    model = metrics["model"]
    return Baseline(
        name=name,
        kind="measured",
        source=source,
        stats={k: float(metrics["stats"][k]) for k in STAT_NAMES},
        protocol={
            "selection": protocol["selection"],
            "num_images": protocol["num_images"],
            "input_size": list(protocol["input_size"]) if protocol["input_size"] is not None else None,
            "preprocess": protocol.get("preprocess"),
            "clip_boxes": protocol.get("clip_boxes"),
            "score_threshold": protocol.get("score_threshold"),
        },
        model={
            "name": Path(str(model["path"])).name,
            "sha256": model["sha256"],
            "size_bytes": model.get("size_bytes"),
        },
        per_category=tuple(CategoryScore(**c) for c in metrics.get("per_category", [])),
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        note=note,
        extra={
            "providers_used": list(metrics.get("providers_used", [])),
            "versions": dict(metrics.get("versions", {})),
        },
        identity=identity,
    )


def write_baseline(path: Path, baseline: Baseline, *, overwrite: bool = False) -> None:
    """Write a baseline file atomically; an existing file is kept unless `overwrite`."""
    if path.exists() and not overwrite:
        raise OutputError(f"baseline file {path} already exists: choose another --output or pass --overwrite")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, baseline.to_json())
    except OSError as exc:
        raise OutputError(f"cannot write baseline file {path}: {exc.strerror}") from None
    log.debug(
        "wrote baseline %s (%s, %s %.4f)", path, baseline.kind, "AP", baseline.stats.get("AP", float("nan"))
    )


def load_gate_baseline(gate: GateConfig, *, where: str, key: str = "gate") -> Baseline | None:
    """The baseline a gate section names, read and checked before any model loads (None: no baseline)."""
    if gate.baseline is None:
        return None
    baseline = read_baseline(gate.baseline)
    if gate.max_class_baseline_drop is not None and not baseline.per_category:
        raise ConfigError(
            f"{where}: {key}.max_class_baseline_drop: baseline {gate.baseline} has no per-category AP "
            f"({baseline.kind} figures); use a measured baseline (`ssd-eval baseline RUN_DIR`) "
            "or remove the rule"
        )
    if gate.metric not in baseline.stats and gate.max_baseline_drop is not None:
        raise ConfigError(
            f"{where}: {key}.metric: baseline {gate.baseline} has no {gate.metric} "
            f"(it has {', '.join(baseline.stats) or 'no stats'})"
        )
    for index, stat in enumerate(gate.baseline_stats):
        if stat not in baseline.stats:
            raise ConfigError(
                f"{where}: {key}.baseline_stats[{index}]: baseline {gate.baseline} has no {stat} "
                f"(it has {', '.join(baseline.stats) or 'no stats'})"
            )
    return baseline


def _shown(key: str, value: object) -> str:
    """One recorded fact as a person reads it: `null`, `true`, 1200x1200, sha256 80013dd940ef…, 947,715."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        if key.endswith("size"):
            return "x".join(str(v) for v in value)
        return ", ".join(_shown(key, v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_shown(str(k), v)}" for k, v in value.items())
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str) and key.endswith("sha256"):
        return f"{value[:12]}…"
    return str(value)


def baseline_lines(baseline: Baseline) -> list[str]:
    """`ssd-eval baseline --show`: the figures (published ones with the digits they were published
    with, measured ones to 4 decimals), then what they are for, one labelled line each."""
    stats = ", ".join(f"{k} {v:.{baseline.decimals.get(k, 4)}f}" for k, v in baseline.stats.items())
    lines = [f"{baseline.name} ({baseline.kind}): {stats}"]
    protocol = ", ".join(f"{k} {_shown(k, v)}" for k, v in baseline.protocol.items())
    lines.append(f"protocol   {protocol}")
    model = baseline.model
    parts = [str(model.get("name", "")) or "unnamed"]
    parts += [f"{k} {_shown(k, v)}" for k, v in model.items() if k != "name"]
    lines.append(f"model      {', '.join(parts)}")
    if baseline.identity is not None:
        images = baseline.identity.images
        lines.append(
            f"images     {images.count} ({images.selection}, ids sha256 {images.digest[:12]}…); holds any "
            "later run of these images and ground truth"
        )
    lines.append(f"source     {baseline.source}")
    if baseline.created:
        lines.append(f"created    {baseline.created}")
    if baseline.note:
        lines.append(f"note       {baseline.note}")
    if baseline.per_category:
        lines.append(f"per-class  AP of {len(baseline.per_category)} categories")
    for key, value in baseline.extra.items():
        lines.append(f"{key:<10} {_shown(key, value)}")
    return lines
