"""ssd_eval: the true COCO box mAP of the ONNX Model Zoo SSD-ResNet34 detector, on any execution provider.

The Python API (the same runs, verdicts and files as `ssd-eval`):

    result = ssd_eval.evaluate("coco_val.yaml", model="ssd-10", provider="cpu")
    assert result.verdict == "PASS", result.gate.verdict_line

`evaluate`, `score`, `merge`, `compare` and `import_detections` are documented in full in
`ssd_eval.engine.api`, imported on first use so that `import ssd_eval` stays light (no onnxruntime).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ssd_eval.engine.api import CompareConfigArg, Comparison, ConfigArg, Evaluation, PathArg

__version__ = "0.1.0"

__all__ = ["compare", "evaluate", "import_detections", "merge", "score"]


def evaluate(
    config: ConfigArg | None,
    *,
    model: PathArg | None = None,
    data: PathArg | None = None,
    limit: int | None = None,
    provider: str | Sequence[str] | None = None,
    output: PathArg | None = None,
    run_name: str | None = None,
    resume: PathArg | None = None,
    require_gate: bool = False,
    image_ids: PathArg | None = None,
    baseline: PathArg | None = None,
    max_baseline_drop: float | None = None,
) -> Evaluation:
    """Evaluate a model on COCO, gate it and write its run folder: see `ssd_eval.engine.api.evaluate`."""
    import ssd_eval.engine.api as api

    return api.evaluate(
        config,
        model=model,
        data=data,
        limit=limit,
        provider=provider,
        output=output,
        run_name=run_name,
        resume=resume,
        require_gate=require_gate,
        image_ids=image_ids,
        baseline=baseline,
        max_baseline_drop=max_baseline_drop,
    )


def score(
    folder: PathArg,
    *,
    scorer: str | None = None,
    data: PathArg | None = None,
    require_gate: bool = False,
) -> Evaluation:
    """Score a run folder again and gate it: see `ssd_eval.engine.api.score`."""
    import ssd_eval.engine.api as api

    return api.score(folder, scorer=scorer, data=data, require_gate=require_gate)


def import_detections(
    file: PathArg,
    *,
    data: PathArg | None = None,
    format: str | None = None,
    config: ConfigArg | None = None,
    output: PathArg | None = None,
    run_name: str | None = None,
    producer: str | None = None,
    model: PathArg | None = None,
    model_sha256: str | None = None,
    selection: str | None = None,
    image_order: str | None = None,
    ignore_extra: bool = False,
    overwrite: bool = False,
    require_gate: bool = False,
) -> Evaluation:
    """Make a run folder from detections made elsewhere (a COCO results file, an MLPerf accuracy log),
    score and gate it: see `ssd_eval.engine.api.import_detections` (from ssd_eval.engine.import_run)."""
    import ssd_eval.engine.api as api

    return api.import_detections(
        file,
        data=data,
        format=format,
        config=config,
        output=output,
        run_name=run_name,
        producer=producer,
        model=model,
        model_sha256=model_sha256,
        selection=selection,
        image_order=image_order,
        ignore_extra=ignore_extra,
        overwrite=overwrite,
        require_gate=require_gate,
    )


def merge(
    folders: Sequence[PathArg],
    *,
    output: PathArg | None = None,
    scorer: str | None = None,
    data: PathArg | None = None,
    overwrite: bool = False,
    require_gate: bool = False,
) -> Evaluation:
    """Merge the shards of one run and gate the whole: see `ssd_eval.engine.api.merge`."""
    import ssd_eval.engine.api as api

    return api.merge(
        folders, output=output, scorer=scorer, data=data, overwrite=overwrite, require_gate=require_gate
    )


def compare(
    folders: Sequence[PathArg],
    *,
    reference: str | None = None,
    config: CompareConfigArg | None = None,
    output: PathArg | None = None,
    run_name: str | None = None,
    max_ap_drop: float | None = None,
    max_class_ap_drop: float | None = None,
    min_matched: float | None = None,
    max_extra: float | None = None,
    max_score_diff: float | None = None,
    max_box_diff: float | None = None,
    min_full_agreement: float | None = None,
    require_gate: bool = False,
    data: PathArg | None = None,
) -> Comparison:
    """Compare finished run folders with a reference and gate them: see `ssd_eval.engine.api.compare`."""
    import ssd_eval.engine.api as api

    return api.compare(
        folders,
        reference=reference,
        config=config,
        output=output,
        run_name=run_name,
        max_ap_drop=max_ap_drop,
        max_class_ap_drop=max_class_ap_drop,
        min_matched=min_matched,
        max_extra=max_extra,
        max_score_diff=max_score_diff,
        max_box_diff=max_box_diff,
        min_full_agreement=min_full_agreement,
        require_gate=require_gate,
        data=data,
    )
