"""Human-readable summaries of a run (pure: returns text; the CLI prints it)."""

from __future__ import annotations

from ssd_eval.coco_stats import STAT_NAMES, is_undefined
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.reports.gate import GateReport
from ssd_eval.reports.results import RunResult

_STAT_LABELS = {
    "AP": "AP @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "AP50": "AP @[IoU=0.50 | area=all | maxDets=100]",
    "AP75": "AP @[IoU=0.75 | area=all | maxDets=100]",
    "APs": "AP @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "APm": "AP @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "APl": "AP @[IoU=0.50:0.95 | area=large | maxDets=100]",
    "AR1": "AR @[IoU=0.50:0.95 | area=all | maxDets=1]",
    "AR10": "AR @[IoU=0.50:0.95 | area=all | maxDets=10]",
    "AR100": "AR @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "ARs": "AR @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "ARm": "AR @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "ARl": "AR @[IoU=0.50:0.95 | area=large | maxDets=100]",
}


def stat_text(value: float | None, spec: str = ".4f") -> str:
    """A stat as printed: `n/a` where COCOeval could not compute it (-1), never as a figure."""
    return "n/a" if is_undefined(value) else format(value, spec)


def summary(result: RunResult, *, categories: int = 5) -> str:
    """The table printed at the end of a run."""
    p = result.protocol
    model = result.model
    per_image = result.num_detections / max(p.num_images, 1)
    lines = [
        f"model      {model.path}  (sha256 {model.sha256[:12]}…, {model.size_bytes:,} bytes)"
        if result.identity.model_known
        else "model      not known (imported detections; name it with --model or --model-sha256)",
        f"providers  {', '.join(result.providers_used)}",
        f"images     {p.num_images} ({p.selection}"
        + (", limit " + str(p.limit) if p.limit is not None else "")
        + (", shard " + p.shard if p.shard else "")
        + f"; {p.annotated_images} of {p.total_images} in the file are annotated)"
        + f"  input {p.input_text}  clip_boxes={p.clip_boxes}",
        *([f"imported   {result.identity.source.describe()}"] if result.identity.source else []),
        f"detections {result.num_detections:,} ({per_image:.1f} per image)",
        "",
    ]
    for name in STAT_NAMES:
        lines.append(f"  {name:<6} {stat_text(result.stats[name]):>7}   {_STAT_LABELS[name]}")
    scored = sorted((c for c in result.per_category if not is_undefined(c.ap)), key=lambda c: c.ap or 0.0)
    if scored and categories:
        lines.append("")
        lines.extend(category_lines(scored, categories))
    t = result.timings
    lines.append("")
    lines.append(
        f"time       {result.wall_s:.1f} s wall, {result.images_per_s:.2f} img/s; per image (median ms): "
        + ", ".join(
            f"{stage} {t[stage].median_ms:.1f}"
            for stage in ("read", "preprocess", "infer", "decode")
            if stage in t
        )
        + (f"; scoring {t['score'].total_s:.1f} s" if "score" in t else "")
    )
    if result.skipped_images:
        lines.append(
            f"SKIPPED    {len(result.skipped_images)} image(s); their ground truth counted as missed:"
        )
        lines.extend(f"           {s.image_id} {s.file}: {s.reason}" for s in result.skipped_images[:10])
    lines.extend(f"WARNING    {warning}" for warning in result.warnings)
    lines.append(f"results    {result.run_dir}")
    return "\n".join(lines)


def category_lines(scored: list[CategoryScore], count: int) -> list[str]:
    """The best and worst categories by AP (`scored` ascending), as two lines only when the two lists
    differ: with few categories, or all alike, one line lists them all."""
    worst, best = scored[:count], list(reversed(scored[-count:]))
    if worst[0].ap == best[0].ap:
        return [f"AP         {best[0].ap:.4f} in each of the {len(scored)} categories with ground truth"]
    if len(scored) <= count:
        return [f"AP         {', '.join(f'{c.name} {c.ap:.4f}' for c in reversed(scored))}"]
    return [
        f"best AP    {', '.join(f'{c.name} {c.ap:.4f}' for c in best)}",
        f"worst AP   {', '.join(f'{c.name} {c.ap:.4f}' for c in worst)}",
    ]


def gate_lines(report: GateReport) -> list[tuple[str, bool]]:
    """One line per gate rule, then the verdict; each with whether it reports a failure (for stderr)."""
    lines: list[tuple[str, bool]] = []
    for check in report:
        if check.evaluated:
            lines.append((f"gate {'PASS' if check.passed else 'FAIL'}: {check.message}", check.failed))
        else:
            lines.append((f"gate {check.state}: {check.rule}: {check.message}", False))
    lines.append((f"gate verdict {report.verdict_line}", report.exit_code != 0))
    return lines
