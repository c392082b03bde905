"""CI files beside metrics.json: a JUnit XML of the gate's rules and a Markdown summary.

The JUnit file has one test case per gate rule (a failed rule is a <failure> whose message is the
rule's one-line verdict; a rule that did not apply is <skipped>), so a CI system lists exactly which
rules failed. The Markdown is fit for a CI job summary (e.g. `cat summary.md >> $GITHUB_STEP_SUMMARY`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ssd_eval.coco_stats import STAT_NAMES, delta_text, is_undefined
from ssd_eval.errors import EXIT_GATE_FAILED
from ssd_eval.files import JUNIT_FILE, SUMMARY_FILE, write_text_atomic
from ssd_eval.reports.comparison import CompareResult, RunReport
from ssd_eval.reports.gate import GateReport
from ssd_eval.reports.report import stat_text
from ssd_eval.reports.results import RunResult

VERDICT_CASE = "gate verdict"


def junit_xml(
    report: GateReport, *, suite: str, time_s: float = 0.0, stats: Mapping[str, float | None] | None = None
) -> str:
    """The gate as a JUnit XML document: one test case per rule, and one for the verdict.

    A failed rule is a <failure>; a skipped or not comparable one is <skipped> with why. The verdict
    case fails exactly when the command exits 1 (a rule failed, or NO VERDICT with gate.required),
    so the CI's test report and the exit code always agree. `stats` (the 12 COCO stats of a run; of a
    comparison, `<run>.<stat>` for each run) are the verdict case's properties, so a CI's test report
    shows the figures beside the verdict; an undefined stat (-1) is `n/a`.
    """
    checks = list(report)
    verdict_fails = report.exit_code == EXIT_GATE_FAILED
    failures = len(report.failures) + int(verdict_fails)
    no_verdict = report.verdict == "NO VERDICT" and not verdict_fails
    skipped = len(checks) - sum(c.evaluated for c in checks) + int(no_verdict)
    tests = len(checks) + 1
    suites = ET.Element(
        "testsuites", name="ssd-eval", tests=str(tests), failures=str(failures), skipped=str(skipped)
    )
    element = ET.SubElement(
        suites,
        "testsuite",
        name=suite,
        tests=str(tests),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{time_s:.3f}",
    )
    properties = ET.SubElement(element, "properties")
    ET.SubElement(properties, "property", name="verdict", value=report.verdict)
    ET.SubElement(properties, "property", name="exit_code", value=str(report.exit_code))
    for check in checks:
        classname = f"ssd_eval.gate.{check.subject}" if check.subject else "ssd_eval.gate"
        case = ET.SubElement(element, "testcase", classname=classname, name=check.rule, time="0")
        if check.failed:
            failure = ET.SubElement(case, "failure", message=check.message, type="GateFailure")
            failure.text = check.message
        elif not check.evaluated:
            # A not comparable rule's message already says so.
            text = check.message if check.state == "not comparable" else f"{check.state}: {check.message}"
            ET.SubElement(case, "skipped", message=text)
        else:
            ET.SubElement(case, "system-out").text = check.message
    case = ET.SubElement(element, "testcase", classname="ssd_eval.gate", name=VERDICT_CASE, time="0")
    if stats:
        figures = ET.SubElement(case, "properties")
        for name, value in stats.items():
            shown = "n/a" if is_undefined(value) else repr(float(value))  # type: ignore[arg-type]
            ET.SubElement(figures, "property", name=name, value=shown)
    if verdict_fails:
        failure = ET.SubElement(case, "failure", message=report.verdict_line, type="GateVerdict")
        failure.text = report.verdict_line
    elif no_verdict:
        ET.SubElement(case, "skipped", message=report.verdict_line)
    else:
        ET.SubElement(case, "system-out").text = report.verdict_line
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _escape(text: str) -> str:
    """Text of the user's (a name, a producer, a message) as one line of Markdown: no table break, no
    new line (a heading), no HTML (`<!--` would hide the rest of a GitHub step summary)."""
    return " ".join(text.replace("|", "\\|").replace("<", "&lt;").split())


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines.extend("| " + " | ".join(_escape(str(cell)) for cell in row) + " |" for row in rows)
    return lines


_MARKS = {"passed": "pass", "failed": "**FAIL**", "skipped": "skipped", "not comparable": "not comparable"}


def gate_markdown(report: GateReport) -> list[str]:
    """The gate as a verdict line and one line per rule with its state."""
    lines = [f"**Gate: {report.verdict}** — {_escape(report.reason)}"]
    if report.checks:
        lines.append("")
    for check in report:
        lines.append(f"- {_MARKS[check.state]}: `{check.rule}` — {_escape(check.message)}")
    return lines


def run_markdown(result: RunResult, report: GateReport) -> str:
    """A run's summary: gate verdict, protocol, the 12 stats, worst categories, timing."""
    p = result.protocol
    lines = [
        f"## ssd-eval: {_escape(Path(result.model.path).name or 'model not known')} on "
        f"{_escape(', '.join(result.providers_used))}",
        "",
        *gate_markdown(report),
        "",
        *([f"**Likely cause:** {_escape(result.diagnosis['line'])}", ""] if result.diagnosis else []),
        f"Images: {p.num_images} ({p.selection}"
        + (f", limit {p.limit}" if p.limit is not None else "")
        + (f", shard {p.shard}" if p.shard else "")
        + f"), input {p.input_text}, model sha256 `{result.model.sha256[:16]}…`",
        *(
            ["", f"Detections imported: {_escape(result.identity.source.describe())}"]
            if result.identity.source
            else []
        ),
        "",
        *table(STAT_NAMES, [[stat_text(result.stats[name]) for name in STAT_NAMES]]),
    ]
    scored = sorted((c for c in result.per_category if not is_undefined(c.ap)), key=lambda c: c.ap or 0.0)
    if scored:
        lines += ["", "Lowest per-category AP:", ""]
        lines += table(
            ["category", "AP", "AP50", "gt boxes"],
            [[c.name, stat_text(c.ap), stat_text(c.ap50), c.num_gt] for c in scored[:5]],
        )
    if result.per_category:
        lines += details(
            f"AP of all {len(result.per_category)} categories",
            table(
                ["category", "AP", "AP50", "gt boxes", "detections"],
                [
                    [c.name, stat_text(c.ap), stat_text(c.ap50), c.num_gt, c.num_det]
                    for c in sorted(result.per_category, key=lambda c: c.category_id)
                ],
            ),
        )
    infer = result.timings.get("infer_steady") or result.timings.get("infer")
    if infer is not None:
        lines += [
            "",
            f"Inference per image: median {infer.median_ms:.1f} ms, p90 {infer.p90_ms:.1f} ms; "
            f"wall {result.wall_s:.1f} s.",
        ]
    lines += _run_pictures(result.pictures)
    if result.skipped_images:
        lines += [
            "",
            f"**{len(result.skipped_images)} image(s) skipped**; their ground truth counted as missed.",
        ]
    for warning in result.warnings:
        lines += ["", f"**Warning:** {warning}"]
    lines += _provenance_lines(result.provenance)
    return "\n".join(lines) + "\n"


def details(summary: str, body: Sequence[str]) -> list[str]:
    """A block collapsed by default (GitHub renders the table inside once opened)."""
    return ["", "<details>", f"<summary>{_escape(summary)}</summary>", "", *body, "", "</details>"]


def _run_pictures(pictures: Mapping[str, Any]) -> list[str]:
    """The pictures a run's `report` drew, or why not."""
    lines = []
    if "pr_curve" in pictures:
        note = f" ({pictures['pr_curve_note']})" if pictures.get("pr_curve_note") else ""
        if pictures["pr_curve"]:
            lines.append(f"- PR curve: `{pictures['pr_curve']}`{note}")
        else:
            lines.append(f"- PR curve: not drawn: {_escape(str(pictures.get('pr_curve_note', '')))}")
    if "worst_images" in pictures:
        files = ", ".join(f"`{f}`" for f in pictures["worst_images"])
        not_drawn = [str(line) for line in pictures.get("worst_images_not_drawn", [])]
        if not_drawn:
            more = f" ({len(not_drawn) - 1} more)" if len(not_drawn) > 1 else ""
            files = (files + "; " if files else "") + (
                f"{len(not_drawn)} not drawn, the images could not be read: {_escape(not_drawn[0])}{more}"
            )
        lines.append(
            "- images most wrong against the ground truth (missed boxes plus extra detections scoring "
            f">= {pictures.get('min_score')}): "
            + (files or "none: every ground-truth box is found, nothing extra")
        )
    return ["", "Pictures:", "", *lines] if lines else []


def _provenance_lines(prov: Mapping[str, Any]) -> list[str]:
    """The command, version, commit and times behind a summary (none before they are recorded)."""
    if not prov:
        return []
    commit = f", commit `{str(prov['git_commit'])[:12]}`" if prov.get("git_commit") else ""
    return [
        "",
        f"`{_escape(' '.join(prov['command']))}` (ssd_eval {prov['ssd_eval_version']}{commit}), "
        f"{prov['started']} to {prov['finished']}.",
    ]


def write_ci_files(
    folder: Path,
    report: GateReport,
    markdown: str,
    *,
    suite: str,
    time_s: float = 0.0,
    stats: Mapping[str, float | None] | None = None,
) -> None:
    """junit.xml and summary.md in `folder`, each written atomically."""
    write_text_atomic(folder / JUNIT_FILE, junit_xml(report, suite=suite, time_s=time_s, stats=stats))
    write_text_atomic(folder / SUMMARY_FILE, markdown)


STEP_SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"


def append_step_summary(folder: Path, environ: Mapping[str, str]) -> str | None:
    """Append `folder`'s summary.md to the file GitHub Actions names in GITHUB_STEP_SUMMARY (when set),
    so that the job page shows the verdict without a step of its own. Appended, never overwritten
    (other steps write there too). A summary that cannot be written costs the job nothing: the
    warning to print (None: appended, or no such variable)."""
    target = environ.get(STEP_SUMMARY_VARIABLE)
    if not target:
        return None
    try:
        text = (folder / SUMMARY_FILE).read_text(encoding="utf-8")
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        where = exc.filename or target
        return f"cannot append the summary to {STEP_SUMMARY_VARIABLE} ({where}): {exc.strerror or exc}"
    return None


def _signed(value: float) -> str:
    """A delta as every report writes it (`coco_stats.delta_text`)."""
    return delta_text(value)


def _delta(run: RunReport, reference: RunReport | None, name: str) -> str:
    """A stat's delta against the reference; `n/a` where either side's stat is undefined (-1)."""
    if reference is None or is_undefined(run.stats.get(name)) or is_undefined(reference.stats.get(name)):
        return "n/a"
    return _signed(run.deltas[name])


def _g(value: float) -> str:
    """Differences span 0 to ~1e2: fixed notation where readable, else scientific."""
    if value == 0:
        return "0"
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def _runtime(versions: dict[str, str]) -> str:
    """The onnxruntime package a run used (onnxruntime, -gpu, -openvino, ...) and its version."""
    found = [f"{k} {v}" for k, v in versions.items() if k.startswith("onnxruntime")]
    return ", ".join(found)


def compare_markdown(result: CompareResult, report: GateReport, *, worst_categories: int = 5) -> str:
    """A comparison's summary: gate, accuracy with deltas, agreement, raw differences, latency, pictures."""
    p = result.protocol
    ran = [r for r in result.runs if r.ran]
    skipped = [r for r in result.runs if not r.ran]
    reference = next((r for r in ran if r.name == result.reference), None)
    lines = [
        f"## ssd-eval compare: {len(ran)} run(s) on {p.num_images} images, reference `{result.reference}`",
        "",
        *gate_markdown(report),
        "",
        f"Images: {p.num_images} ({p.selection}"
        + (f", limit {p.limit}" if p.limit is not None else "")
        + (f", shard {p.shard}" if p.shard is not None else "")
        + f"); agreement: same category and IoU >= {result.iou_threshold}.",
        "",
        "### Accuracy and latency",
        "",
    ]
    rows = []
    for r in ran:
        infer = r.latency.get("infer")
        model = f"{Path(r.model.path).name} `{r.model.sha256[:12]}`" if r.model else ""
        rows.append(
            [
                r.name + (" (reference)" if r.name == result.reference else ""),
                ", ".join(r.providers_used),
                model,
                stat_text(r.stats["AP"]),
                _delta(r, reference, "AP"),
                stat_text(r.stats["AP50"]),
                _delta(r, reference, "AP50"),
                f"{infer.median_ms:.1f}" if infer else "",
                f"{infer.p90_ms:.1f}" if infer else "",
            ]
        )
    lines += table(
        ["run", "providers that ran", "model", "AP", "ΔAP", "AP50", "ΔAP50", "median ms/img", "p90 ms/img"],
        rows,
    )
    for r in skipped:
        lines += ["", f"- **{r.name} skipped** ({r.provider}): {_escape(r.skip_reason)}"]
    for r in ran:
        lines += [f"- **{r.name} warning**: {_escape(w)}" for w in r.warnings]
    lines += ["", "Where and how each run ran:", ""]
    lines += table(
        ["run", "provider options requested", "runtime", "python", "machine", "preprocessing, input"],
        [
            [
                r.name,
                ", ".join(f"{k}={v}" for k, v in r.provider_options.items()) or "none",
                _runtime(r.versions),
                r.versions.get("python", ""),
                f"{r.machine.get('platform', '')}, {r.machine.get('cpu_count', '')} CPUs",
                f"{r.preprocess}, {r.input_size[0]}x{r.input_size[1]}" if r.input_size else r.preprocess,
            ]
            for r in ran
        ],
    )
    lines += ["", "All 12 COCO stats (Δ against the reference):", ""]
    lines += table(
        ["stat", *[r.name for r in ran]],
        [
            [name]
            + [
                stat_text(r.stats[name])
                + ("" if r.name == result.reference else f" ({_delta(r, reference, name)})")
                for r in ran
            ]
            for name in STAT_NAMES
        ],
    )
    others = [r for r in ran if r.agreement is not None]
    if others:
        lines += ["", "### Detection agreement with the reference", ""]
        agreement_rows = []
        min_score = 0.0
        for r in others:
            a = r.agreement
            assert a is not None
            min_score = a.min_score
            agreement_rows.append(
                [
                    r.name,
                    f"{a.visible_matched} of {a.visible_reference} ref, {a.visible_run} run",
                    a.visible_reference - a.visible_matched,
                    a.visible_extra,
                    f"{a.visible_images_full} / {a.images}",
                    f"{a.matched} of {a.reference_detections} ref, {a.run_detections} run",
                    f"{_g(a.score_diff_mean)} / {_g(a.score_diff_max)}",
                    f"{_g(a.box_diff_px_mean)} / {_g(a.box_diff_px_max)}",
                ]
            )
        lines += [
            f"Counted as the agreement rules count them: the detections scoring >= {min_score} "
            "(agreement.min_score) on their own side, matched against all of the other side's; the "
            "column *all detections* counts every detection, and the score and box differences are "
            "over every matched pair.",
            "",
        ]
        lines += table(
            [
                "run",
                "matched",
                "missing",
                "extra",
                "images in full agreement",
                "all detections: matched",
                "score diff mean / max",
                "box diff px mean / max",
            ],
            agreement_rows,
        )
        lines += [
            "",
            "Raw output differences of matched detections (Polygraphy-style; rel = |run - ref| / |ref|):",
            "",
        ]
        raw_rows = []
        for r in others:
            a = r.agreement
            assert a is not None
            for output, d in (("scores", a.raw_scores), ("boxes (normalized x1 y1 x2 y2)", a.raw_boxes)):
                raw_rows.append(
                    [
                        r.name,
                        output,
                        d.count,
                        _g(d.abs_max),
                        _g(d.abs_mean),
                        _g(d.abs_p99),
                        _g(d.rel_max),
                        _g(d.rel_mean),
                        _g(d.rel_p99),
                    ]
                )
        lines += table(
            ["run", "output", "values", "abs max", "abs mean", "abs p99", "rel max", "rel mean", "rel p99"],
            raw_rows,
        )
        lines += ["", "### Per-category AP, largest drops first", ""]
        for r in others:
            changed = [d for d in r.category_deltas if d.delta != 0.0]
            worst = changed[:worst_categories]
            listed = ", ".join(
                f"{d.name} {stat_text(d.ap)} ({delta_text(d.delta)}, {d.num_gt} gt)" for d in worst
            )
            if not r.category_deltas:
                listed = "no category has an AP on both sides"
            elif not changed:
                listed = f"no category's AP changed ({len(r.category_deltas)} compared)"
            lines.append(f"- **{r.name}**: {listed}")
    lines += _category_table(ran, reference)
    lines += ["", "### Pictures", ""]
    pr = result.pictures.get("pr_curves", "off")
    if pr == "off":
        lines.append("- PR curves: off (pictures.pr_curves: false)")
    elif pr is None:
        lines.append(f"- PR curves: not drawn: {result.pictures.get('pr_curves_absent', '')}")
    else:
        note = result.pictures.get("pr_curves_note")
        lines.append(f"- PR curves: `{pr}`" + (f" ({_escape(note)})" if note else ""))
    min_score = result.pictures.get("disagreement_min_score", 0.0)
    for name, files in result.pictures.get("disagreements", {}).items():
        lines.append(
            f"- where {name} disagrees most with {result.reference}: "
            + (
                ", ".join(f"`{f}`" for f in files)
                or f"nowhere (no detection scoring >= {min_score} is in one run and not the other)"
            )
        )
    first = [
        f"{r.name} {r.latency['infer_first'].median_ms:.0f} ms" for r in ran if "infer_first" in r.latency
    ]
    walls = {round(r.wall_s, 1) for r in ran if r.wall_s}
    own = ", ".join(f"{r.name} {r.wall_s:.1f} s" for r in ran if r.wall_s)
    if len(walls) == 1 and len(ran) > 1:  # one loop fed every session (a one-process comparison)
        own = f"{walls.pop():.1f} s, one loop feeding every session"
    lines += [
        "",
        f"First inference (warm-up, not in the latency above): {', '.join(first)}. "
        f"This command took {result.wall_s:.1f} s"
        + (f"; the runs' own wall time (reading, inference, scoring): {own}." if own else "."),
    ]
    if result.skipped_images:
        lines += [
            "",
            f"**{len(result.skipped_images)} image(s) skipped**; their ground truth counted as missed.",
        ]
    lines += _provenance_lines(result.provenance)
    return "\n".join(lines) + "\n"


def _category_table(ran: Sequence[RunReport], reference: RunReport | None) -> list[str]:
    """Every category's AP in every run (Δ against the reference) and its detections, collapsed."""
    if reference is None or not reference.per_category:
        return []
    by_run = [{c.category_id: c for c in r.per_category} for r in ran]
    header = ["category", "gt boxes"]
    for r in ran:
        header += [
            f"{r.name} AP" + ("" if r is reference else " (Δ)"),
            f"{r.name} AP50",
            f"{r.name} detections",
        ]
    rows = []
    for base in sorted(reference.per_category, key=lambda c: c.category_id):
        row: list[object] = [base.name, base.num_gt]
        for r, scores in zip(ran, by_run, strict=True):
            c = scores.get(base.category_id)
            if c is None:
                row += ["", "", ""]
                continue
            ap = stat_text(c.ap)
            if r is not reference:
                both = not is_undefined(c.ap) and not is_undefined(base.ap)
                ap += f" ({delta_text(c.ap - base.ap) if both else 'n/a'})"  # type: ignore[operator]
            row += [ap, stat_text(c.ap50), c.num_det]
        rows.append(row)
    return details(f"AP of all {len(rows)} categories, every run", table(header, rows))
