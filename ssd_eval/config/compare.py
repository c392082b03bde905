"""The comparison config: one reference run and a list of runs (provider, options, model) to hold against it.

Loaded strictly like the run config (`ssd_eval.config.schema.parse_section`): every unknown key, wrong
type or impossible value is a ConfigError naming the file and the dotted key (`runs[1].provider.name`),
raised before any model or image is loaded. The dataset, preprocess, session, decode, scoring and
assets sections are the run config's own; relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ssd_eval.config.run import (
    AssetsConfig,
    DatasetConfig,
    DecodeConfig,
    GateConfig,
    ModelConfig,
    OutputConfig,
    PreprocessConfig,
    ProviderConfig,
    RunConfig,
    ScoringConfig,
    SessionConfig,
    check_dataset_values,
    check_decode_values,
    check_gate_values,
    check_output_values,
    check_preprocess_values,
    check_session_values,
)
from ssd_eval.config.schema import absolute, parse_section, raise_first_problem, read_yaml_config
from ssd_eval.errors import ConfigError


@dataclass(frozen=True)
class RunSpec:
    """One side of the comparison: a provider with its options, and optionally another model."""

    name: str | None = None  # label in the report; null: the provider's short name
    provider: ProviderConfig = field(default_factory=ProviderConfig)
    model: ModelConfig | None = None  # null: the comparison's `model`
    # Context recorded in the report, e.g. "CUDA with use_tf32=0" or "int8 dynamic quantization".
    note: str = ""


@dataclass(frozen=True)
class AgreementConfig:
    """How detections of a run are matched to the reference's."""

    iou_threshold: float = 0.5  # a pair must share its category and overlap at least this much
    # The agreement rules count only detections scoring at least this on their own side (matching
    # uses all): below it detections flicker between providers without anyone seeing them.
    min_score: float = 0.1


@dataclass(frozen=True)
class CompareGateConfig(GateConfig):
    """The run config's gate rules (applied to every run) plus rules against the reference run."""

    max_ap_drop: float | None = None  # fail when reference[metric] - run[metric] > this
    max_class_ap_drop: float | None = None  # fail when any category's AP drops more than this
    # Detection-level agreement with the reference (each off when null), over the detections scoring
    # at least agreement.min_score:
    min_matched: float | None = None  # fraction of the reference's detections the run matches
    max_extra: float | None = None  # fraction of the run's detections without a reference partner
    max_score_diff: float | None = None  # largest |score difference| of a matched pair
    max_box_diff: float | None = None  # largest corner difference of a matched pair, in pixels
    min_full_agreement: float | None = None  # fraction of images where every detection is matched both ways


@dataclass(frozen=True)
class PicturesConfig:
    """Optional pictures beside the report."""

    pr_curves: bool = True  # precision-recall curves per run (needs matplotlib; skipped when absent)
    disagreements: int = 4  # images where each run disagrees most with the reference, drawn; 0: none
    min_score: float = 0.3  # boxes drawn on those images have at least this score
    max_side: int = 640  # drawn images are scaled down to at most this many pixels a side


@dataclass(frozen=True)
class CompareSettings:
    """How finished runs are compared: what `ssd-eval compare RUN_DIR...` needs beyond the folders."""

    agreement: AgreementConfig = field(default_factory=AgreementConfig)
    gate: CompareGateConfig = field(default_factory=CompareGateConfig)
    pictures: PicturesConfig = field(default_factory=PicturesConfig)


@dataclass(frozen=True)
class CompareConfig:
    """Everything one comparison needs, resolved and validated."""

    model: ModelConfig = field(default_factory=ModelConfig)
    reference: RunSpec = field(default_factory=RunSpec)
    runs: tuple[RunSpec, ...] = ()
    skip_unavailable: bool = False
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    agreement: AgreementConfig = field(default_factory=AgreementConfig)
    gate: CompareGateConfig = field(default_factory=CompareGateConfig)
    pictures: PicturesConfig = field(default_factory=PicturesConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    assets: AssetsConfig = field(default_factory=AssetsConfig)
    source_file: Path | None = field(default=None, metadata={"yaml": False})

    @property
    def settings(self) -> CompareSettings:
        """The sections that say how the runs are compared (the rest says how they run)."""
        return CompareSettings(agreement=self.agreement, gate=self.gate, pictures=self.pictures)

    @property
    def all_runs(self) -> tuple[RunSpec, ...]:
        """The reference first, then the runs."""
        return (self.reference, *self.runs)

    def run_config(self, spec: RunSpec) -> RunConfig:
        """The RunConfig of one side (for asset resolution and the record)."""
        return RunConfig(
            model=spec.model or self.model,
            dataset=self.dataset,
            preprocess=self.preprocess,
            providers=(spec.provider,),
            session=self.session,
            decode=self.decode,
            scoring=self.scoring,
            output=self.output,
            assets=self.assets,
        )


def run_name(spec: RunSpec) -> str:
    """The label of a run: its `name`, else its provider's short name."""
    return spec.name or spec.provider.name.lower().removesuffix("executionprovider")


def load_compare_config(name: str | Path) -> CompareConfig:
    """Read, validate and resolve a comparison YAML file."""
    raw, path = read_yaml_config(name)
    return compare_config_from_dict(raw, base_dir=absolute(path).parent, source=path)


def compare_config_from_dict(raw: object, *, base_dir: Path, source: Path | None = None) -> CompareConfig:
    """Validate a parsed YAML tree into a `CompareConfig`."""
    where = str(source) if source is not None else "config"
    if isinstance(raw, dict) and "runs" not in raw:
        raise ConfigError(
            f"{where}: runs: missing required key (list the runs to compare with the reference)"
        )
    config = parse_section(raw, CompareConfig, base_dir=base_dir, where=where)
    config = dataclasses.replace(config, source_file=source)
    _check_values(config, where)
    return config


def _check_values(config: CompareConfig, where: str) -> None:
    """The run config's checks of the sections both share, then the comparison's own."""
    problems: list[tuple[str, str]] = []
    if not config.runs:
        problems.append(
            (
                "runs",
                "list at least one run to compare with the reference, e.g. [{provider: {name: openvino}}]",
            )
        )
    seen: dict[str, str] = {}
    for key, spec in [("reference", config.reference)] + [
        (f"runs[{i}]", s) for i, s in enumerate(config.runs)
    ]:
        label = run_name(spec)
        if not label or "/" in label or label in (".", ".."):
            problems.append((f"{key}.name", f"must be a plain name, got {label!r}"))
        elif label in seen:
            problems.append(
                (f"{key}.name", f"{label!r} is already the name of {seen[label]}: give each run a name")
            )
        seen.setdefault(label, key)
        model = spec.model or config.model
        if model.path is None and model.source is None:
            problems.append(
                (f"{key}.model", "set `path` (an ONNX file) or `source` (e.g. ssd-10, twin-1200)")
            )
    problems.extend(check_dataset_values(config.dataset, "dataset"))
    problems.extend(check_preprocess_values(config.preprocess, "preprocess"))
    if config.preprocess.backend not in ("pillow", "opencv"):
        problems.append(
            (
                "preprocess.backend",
                "a comparison feeds one host-made tensor to every run: use pillow or opencv "
                f"(got {config.preprocess.backend!r}, which finishes preprocessing on each provider)",
            )
        )
    problems.extend(check_session_values(config.session, "session"))
    problems.extend(check_decode_values(config.decode, "decode"))
    problems.extend(check_agreement_values(config.agreement))
    problems.extend(check_gate_values(config.gate, "gate"))
    problems.extend(check_compare_gate_values(config.gate))
    if config.pictures.disagreements < 0:
        problems.append(("pictures.disagreements", "must be >= 0"))
    if config.pictures.max_side < 64:
        problems.append(("pictures.max_side", "must be >= 64"))
    problems.extend(check_output_values(config.output, "output"))
    raise_first_problem(problems, where)


# The comparison gate's own rules: against the reference's AP, and detection-level agreement.
AGREEMENT_RULES = ("min_matched", "max_extra", "max_score_diff", "max_box_diff", "min_full_agreement")
COMPARE_LIMITS = ("max_ap_drop", "max_class_ap_drop", *AGREEMENT_RULES)
FRACTION_RULES = ("max_ap_drop", "max_class_ap_drop", "min_matched", "max_extra", "min_full_agreement")


def check_agreement_values(agreement: AgreementConfig) -> list[tuple[str, str]]:
    """Impossible agreement settings as (dotted key, message) pairs."""
    problems: list[tuple[str, str]] = []
    if not 0.0 < agreement.iou_threshold <= 1.0:
        problems.append(("agreement.iou_threshold", "must be in (0, 1]"))
    if not 0.0 <= agreement.min_score < 1.0:
        problems.append(("agreement.min_score", f"must be in [0, 1), got {agreement.min_score}"))
    return problems


def check_compare_gate_values(gate: CompareGateConfig, key: str = "gate") -> list[tuple[str, str]]:
    """Impossible comparison rules as (dotted key, message) pairs (the config's and the flags')."""
    problems: list[tuple[str, str]] = []
    for name in FRACTION_RULES:
        value = getattr(gate, name)
        if value is not None and not 0.0 <= value <= 1.0:
            problems.append((f"{key}.{name}", f"must be in [0, 1] or null, got {value}"))
    if gate.max_score_diff is not None and not 0.0 <= gate.max_score_diff <= 1.0:
        problems.append(
            (f"{key}.max_score_diff", f"must be in [0, 1] (scores are), got {gate.max_score_diff}")
        )
    # No upper bound: the config loader and compare_settings refuse infinity and NaN before this.
    if gate.max_box_diff is not None and gate.max_box_diff < 0.0:
        problems.append((f"{key}.max_box_diff", f"must be a number of pixels >= 0, got {gate.max_box_diff}"))
    return problems
