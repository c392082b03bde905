"""The results object every report, gate and comparison reads, and its `metrics.json` form."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ssd_eval import __version__
from ssd_eval.evaluation.identity import RunIdentity
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.files import METRICS_FILE, file_sha256, write_json_atomic
from ssd_eval.reports.gate import GateReport, RunFacts


@dataclass(frozen=True)
class SkippedImage:
    """An image left out of inference; its ground truth still counts, as missed."""

    image_id: int
    file: str
    reason: str


@dataclass(frozen=True)
class ModelInfo:
    """Which model file was evaluated, identified by content."""

    path: str
    sha256: str
    size_bytes: int
    source: str | None


@dataclass(frozen=True)
class StageTiming:
    """Seconds spent in one pipeline stage, over all images."""

    total_s: float
    mean_ms: float
    median_ms: float
    p90_ms: float
    count: int

    @classmethod
    def from_samples(cls, seconds: Sequence[float]) -> StageTiming:
        if not seconds:
            return cls(0.0, 0.0, 0.0, 0.0, 0)
        values = np.asarray(seconds)  # perf_counter differences: float64
        return cls(
            total_s=round(float(values.sum()), 4),
            mean_ms=round(float(values.mean() * 1e3), 3),
            median_ms=round(float(np.median(values) * 1e3), 3),
            p90_ms=round(float(np.percentile(values, 90) * 1e3), 3),
            count=len(values),
        )


@dataclass(frozen=True)
class Protocol:
    """Which images were evaluated, and how: a summary of the run's identity, recorded with every result
    (metrics.json's `protocol`; the identity itself is the authority)."""

    selection: str  # annotated (4952 of val2017, the published protocol) | all (5000)
    num_images: int  # images scored
    total_images: int  # images in the annotation file
    annotated_images: int
    limit: int | None
    shard: str | None
    clip_boxes: bool
    score_threshold: float
    preprocess: str
    input_size: tuple[int, int] | None  # None: not known (imported detections)
    id_list_sha256: str | None = None  # the ids came from a dataset.image_ids file (or a partial log)

    @classmethod
    def of(cls, identity: RunIdentity) -> Protocol:
        """The protocol summary of a run identity."""
        images = identity.images
        return cls(
            selection=images.selection,
            num_images=images.count,
            total_images=identity.ground_truth.total_images,
            annotated_images=identity.ground_truth.annotated_images,
            limit=images.limit,
            shard=images.shard,
            clip_boxes=identity.clip_boxes,
            score_threshold=identity.score_threshold,
            preprocess=identity.preprocess,
            input_size=identity.input_size,
            id_list_sha256=images.id_list_sha256,
        )

    @property
    def input_text(self) -> str:
        """The model input size as printed: 1200x1200, or "not known" (imported detections)."""
        return f"{self.input_size[0]}x{self.input_size[1]}" if self.input_size else "not known"

    @property
    def complete(self) -> bool:
        """True when the whole selection was evaluated (no limit, no id list, no shard)."""
        return self.limit is None and self.shard is None and self.id_list_sha256 is None


@dataclass(frozen=True)
class RunResult:
    """One evaluation run: metrics and everything needed to trust and reproduce them."""

    run_dir: str
    stats: dict[str, float]
    per_category: tuple[CategoryScore, ...]
    identity: RunIdentity
    model: ModelInfo
    providers_requested: tuple[str, ...]
    providers_used: tuple[str, ...]
    provider_options: tuple[dict[str, Any], ...]
    num_detections: int
    timings: dict[str, StageTiming]
    wall_s: float
    images_per_s: float
    skipped_images: tuple[SkippedImage, ...] = ()
    # What the run found suspicious but not wrong (e.g. more detections per image than the card's 200).
    warnings: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)  # GateReport.to_json(): verdict, reason, rules
    diagnosis: dict[str, Any] | None = None  # Diagnosis.to_json() when a full run missed its reference
    # Every command that worked on the run folder, first the run's own (history.jsonl).
    history: tuple[Provenance, ...] = ()
    # What `report` drew: pr_curve (a file name, or None with pr_curve_note saying why), worst_images.
    pictures: dict[str, Any] = field(default_factory=dict)

    @property
    def ap(self) -> float:
        return self.stats["AP"]

    @property
    def protocol(self) -> Protocol:
        return Protocol.of(self.identity)

    @property
    def provenance(self) -> dict[str, Any]:
        """The run's own entry of its history (the command that started it): never replaced."""
        return self.history[0].to_json() if self.history else {}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["identity"] = self.identity.to_json(with_ids=False)
        data["protocol"] = asdict(self.protocol)
        data["provenance"] = self.provenance
        data["history"] = [entry.to_json() for entry in self.history]
        return data


def result_from_json(data: Mapping[str, Any], identity: RunIdentity) -> RunResult:
    """Read back a `metrics.json` written by `write_metrics` (or by an older ssd_eval, whose keys are
    a subset), with the identity of its folder (identity.json, or derived from an older folder)."""
    return RunResult(
        run_dir=data["run_dir"],
        stats={str(k): float(v) for k, v in data["stats"].items()},
        per_category=tuple(CategoryScore(**c) for c in data["per_category"]),
        identity=identity,
        model=ModelInfo(**data["model"]),
        providers_requested=tuple(data["providers_requested"]),
        providers_used=tuple(data["providers_used"]),
        provider_options=tuple(data["provider_options"]),
        num_detections=int(data["num_detections"]),
        timings={k: StageTiming(**v) for k, v in data["timings"].items()},
        wall_s=float(data["wall_s"]),
        images_per_s=float(data["images_per_s"]),
        skipped_images=tuple(SkippedImage(**s) for s in data.get("skipped_images", [])),
        warnings=tuple(data.get("warnings", [])),
        config=dict(data.get("config", {})),
        versions=dict(data.get("versions", {})),
        machine=dict(data.get("machine", {})),
        gate=dict(data["gate"]) if isinstance(data.get("gate"), dict) else {},
        diagnosis=data.get("diagnosis"),
        history=_history(data),
        pictures=dict(data["pictures"]) if isinstance(data.get("pictures"), dict) else {},
    )


def _history(data: Mapping[str, Any]) -> tuple[Provenance, ...]:
    """metrics.json's history; an older one has only `provenance`, the last command's entry."""
    if isinstance(data.get("history"), list):
        return tuple(provenance_from_json(e) for e in data["history"])
    old = data.get("provenance")
    return (provenance_from_json(old),) if isinstance(old, dict) and old else ()


def gate_facts(result: RunResult) -> RunFacts:
    """What the gate rules read of a run."""
    images = result.identity.images
    return RunFacts(
        stats=result.stats,
        per_category=result.per_category,
        selection=images.selection,
        num_images=images.count,
        complete=result.protocol.complete,
        model_sha256=result.model.sha256,
        model_name=Path(result.model.path).name,
        partial=f"shard {images.shard}" if images.shard else "",
        subset=images.subset,
        identity=result.identity,
    )


@dataclass(frozen=True)
class Provenance:
    """One command that worked on a run folder: what it was, when (UTC), with which ssd_eval; for a
    part of the inference (a run, or a resume of it), how many images it inferred and its timings."""

    started: str  # ISO 8601 UTC
    finished: str
    command: tuple[str, ...]
    ssd_eval_version: str
    git_commit: str | None  # the checkout ssd_eval ran from, if it is one
    verb: str = ""  # run | resume | score | merge ("" in folders of older ssd_eval)
    outcome: str = "finished"  # finished | stopped (interrupted or failed: what it inferred is kept)
    images_inferred: int = 0
    wall_s: float = 0.0
    timings: dict[str, StageTiming] = field(default_factory=dict)
    folder: str = ""  # the run folder it worked on (a merge lists its shards' parts)

    @property
    def inferred(self) -> bool:
        """A part of the inference: a run or a resume (its timings add up to the run's)."""
        return self.verb in INFERENCE_VERBS

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["command"] = list(self.command)
        return data


INFERENCE_VERBS = ("run", "resume")


def provenance_from_json(data: object) -> Provenance:
    """One history entry as written by `Provenance.to_json` (ValueError naming the key otherwise)."""
    if not isinstance(data, dict):
        raise ValueError("a history entry is not an object")
    try:
        timings = {str(k): StageTiming(**v) for k, v in dict(data.get("timings", {})).items()}
        command = data.get("command", [])
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise ValueError("command: expected a list of strings")
        entry = Provenance(
            started=str(data["started"]),
            finished=str(data["finished"]),
            command=tuple(command),
            ssd_eval_version=str(data.get("ssd_eval_version", "")),
            git_commit=None if data.get("git_commit") is None else str(data["git_commit"]),
            verb=str(data.get("verb", "")),
            outcome=str(data.get("outcome", "finished")),
            images_inferred=int(data.get("images_inferred", 0)),
            wall_s=float(data.get("wall_s", 0.0)),
            timings=timings,
            folder=str(data.get("folder", "")),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"a history entry lacks or mistypes {exc}") from None
    if entry.images_inferred < 0 or not math.isfinite(entry.wall_s) or entry.wall_s < 0:
        raise ValueError("images_inferred and wall_s must be >= 0")
    return entry


def combine_timings(parts: Sequence[Mapping[str, StageTiming]]) -> dict[str, StageTiming]:
    """The timings of a run made of parts (resumed runs, merged shards): totals and counts add up;
    median and p90 are count-weighted means of the parts' (approximate)."""
    combined: dict[str, StageTiming] = {}
    for stage in sorted({k for p in parts for k in p}):
        items = [p[stage] for p in parts if stage in p and p[stage].count]
        count = sum(t.count for t in items)
        if not count:
            continue
        total = sum(t.total_s for t in items)
        combined[stage] = StageTiming(
            total_s=round(total, 4),
            mean_ms=round(total / count * 1e3, 3),
            median_ms=round(sum(t.median_ms * t.count for t in items) / count, 3),
            p90_ms=round(sum(t.p90_ms * t.count for t in items) / count, 3),
            count=count,
        )
    return combined


@dataclass(frozen=True)
class RunTimes:
    """What a run's inference cost, over all its parts."""

    timings: dict[str, StageTiming]
    wall_s: float
    images_per_s: float

    @classmethod
    def of(cls, history: Sequence[Provenance]) -> RunTimes:
        parts = [entry for entry in history if entry.inferred]
        wall = sum(entry.wall_s for entry in parts)
        inferred = sum(entry.images_inferred for entry in parts)
        return cls(
            timings=combine_timings([entry.timings for entry in parts]),
            wall_s=round(wall, 3),
            images_per_s=round(inferred / wall, 4) if wall > 0 else 0.0,
        )


def utc_now() -> str:
    """Now, in UTC, to the second: 2026-11-30T19:37:15Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def source_commit() -> str | None:
    """The git commit of the checkout ssd_eval is imported from, or None (an installed package)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # The whole object name: 40 hex digits, or 64 in a checkout of SHA-256 objects (git init
    # --object-format=sha256). A failing rev-parse (no commit yet) prints "HEAD": not a commit.
    return done.stdout.strip() if done.returncode == 0 else None


def provenance(
    started: str,
    command: Sequence[str],
    *,
    verb: str = "",
    outcome: str = "finished",
    images_inferred: int = 0,
    wall_s: float = 0.0,
    timings: Mapping[str, StageTiming] | None = None,
    folder: str = "",
) -> Provenance:
    """The history entry of a command that started at `started` and finishes now."""
    return Provenance(
        started=started,
        finished=utc_now(),
        command=tuple(command),
        ssd_eval_version=__version__,
        git_commit=source_commit(),
        verb=verb,
        outcome=outcome,
        images_inferred=images_inferred,
        wall_s=round(wall_s, 3),
        timings=dict(timings or {}),
        folder=folder,
    )


def record_verdict(result: RunResult, report: GateReport) -> RunResult:
    """Add the gate's verdict to the run's metrics.json (its history came with the result: every
    command appends its own entry to the folder's history.jsonl)."""
    updated = replace(result, gate=report.to_json())
    write_metrics(Path(result.run_dir) / METRICS_FILE, updated)
    return updated


def write_metrics(path: Path, result: RunResult) -> None:
    """Write `metrics.json` atomically (a crash never leaves half a file)."""
    write_json_atomic(path, result.to_json())


def describe_model(path: Path, source: str | None) -> ModelInfo:
    return ModelInfo(path=str(path), sha256=file_sha256(path), size_bytes=path.stat().st_size, source=source)


def package_versions() -> dict[str, str]:
    """Versions of everything that can change a result."""
    versions = {"python": platform.python_version()}
    for dist in (
        "ssd_eval",
        "onnxruntime",
        "onnxruntime-gpu",
        "onnxruntime-openvino",
        "onnxruntime-directml",
        "numpy",
        "pillow",
        "pycocotools",
        "faster-coco-eval",
        "opencv-python-headless",
        "opencv-python",
        "onnx",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def runtime_distributions() -> list[str]:
    """The installed packages that provide the `onnxruntime` module, as "name version".

    onnxruntime, onnxruntime-gpu, onnxruntime-openvino and onnxruntime-directml all install the same
    module; more than one in an environment overwrite each other's files, and which one imports is
    then an accident. pip cannot see this (each is another distribution name), so it is said here.
    """
    names = sorted(set(metadata.packages_distributions().get("onnxruntime", [])))
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python_executable": sys.executable,
    }
