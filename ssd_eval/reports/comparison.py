"""What a comparison concluded: per-run stats and deltas, agreement, latency; what reports and gates read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ssd_eval.evaluation.agreement import AgreementSummary
from ssd_eval.evaluation.identity import RunIdentity
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.reports.results import ModelInfo, Protocol, SkippedImage, StageTiming


@dataclass(frozen=True)
class CategoryDelta:
    """One category's AP in a run against the reference's."""

    category_id: int
    name: str
    num_gt: int
    reference_ap: float
    ap: float
    delta: float  # ap - reference_ap


@dataclass(frozen=True)
class RunReport:
    """One run of a comparison (the reference included), or why it was skipped."""

    name: str
    status: Literal["ran", "skipped"]
    provider: str  # as requested
    provider_options: dict[str, Any]
    note: str = ""
    skip_reason: str = ""
    run_dir: str = ""  # the run folder it was read from
    providers_used: tuple[str, ...] = ()
    provider_options_used: tuple[dict[str, Any], ...] = ()
    model: ModelInfo | None = None
    preprocess: str = ""  # preprocessing backend
    input_size: tuple[int, int] | None = None
    stats: dict[str, float] = field(default_factory=dict)
    deltas: dict[str, float] = field(default_factory=dict)  # stats - reference stats
    per_category: tuple[CategoryScore, ...] = ()
    category_deltas: tuple[CategoryDelta, ...] = ()  # worst first
    agreement: AgreementSummary | None = None  # None for the reference
    latency: dict[str, StageTiming] = field(default_factory=dict)  # infer (steady), infer_first, decode
    num_detections: int = 0
    wall_s: float = 0.0  # the run's own wall time (its metrics.json): reading, inference, scoring
    # (image id, disagreement) of the images with a visible disagreement (a detection scoring at least
    # pictures.min_score that the other side lacks), worst first
    worst_images: tuple[tuple[int, float], ...] = ()
    versions: dict[str, str] = field(default_factory=dict)  # of the environment the run ran in
    machine: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # the run's own warnings (e.g. more detections than the card's 200)

    @property
    def ran(self) -> bool:
        return self.status == "ran"


@dataclass(frozen=True)
class CompareResult:
    """A whole comparison: what every report, gate and picture reads."""

    out_dir: str
    reference: str
    runs: tuple[RunReport, ...]  # the reference first
    protocol: Protocol
    iou_threshold: float
    skipped_images: tuple[SkippedImage, ...] = ()
    wall_s: float = 0.0  # of the command that wrote the comparison (running the runs too, when it did)
    pictures: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # agreement, gate and pictures settings
    versions: dict[str, str] = field(default_factory=dict)  # of the process that compared
    machine: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)  # GateReport.to_json()
    provenance: dict[str, Any] = field(default_factory=dict)  # Provenance.to_json() of the compare command
    # The reference's identity: every run evaluated its images of its ground truth (compare checks it).
    identity: RunIdentity | None = None

    def run(self, name: str) -> RunReport:
        for report in self.runs:
            if report.name == name:
                return report
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["identity"] = self.identity.to_json(with_ids=False) if self.identity is not None else None
        return data
