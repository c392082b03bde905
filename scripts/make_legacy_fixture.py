"""Write tests/data/legacy_v1: run folders of today's format, for tests/test_legacy_folders.py.

Made at commit 42051d3ab1fabfd91801c69defc6efb4c726b2c2 (`git -C /work/main rev-parse HEAD`), with a
pristine checkout of that commit first on the path:

    git worktree add /tmp/legacy_main <commit>
    PYTHONPATH=/tmp/legacy_main python scripts/make_legacy_fixture.py [--output tests/data/legacy_v1]

The data and detectors are tests/legacy_data.py's, built with the checkout's own tests/helpers.py
(the test rebuilds them with today's and checks MANIFEST.json's sha256, so only run folders are
stored). It writes four run folders (`run-a` gated by `expected` and a baseline, `run-b` of another
detector, the two shards `shard-1of2` and `shard-2of2` of run-a's config) and `baseline-a.json`
(`ssd-eval baseline` of the shards merged, the baseline run-a is gated against). Files derived on
scoring (detections.json, detections.npz, cocoeval.txt) are left out. Absolute paths become
@DATA@ (the COCO root), @MODELS@ (the detectors' folder), @RESULTS@ (the fixture folder) and
@CONFIGS@ (the folder of the configs the runs started from, named in provenance only).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import ssd_eval  # from PYTHONPATH: the checkout whose run folders the fixture records

REPO = Path(__file__).resolve().parents[1]
CHECKOUT = Path(ssd_eval.__file__).resolve().parents[1]
# helpers.py from that checkout (its code builds the data), legacy_data.py from this one.
sys.path[:0] = [str(CHECKOUT / "tests"), str(REPO / "tests")]

from helpers import write_config  # noqa: E402
from legacy_data import AP_A, AP_B, build  # noqa: E402

from ssd_eval.cli import main  # noqa: E402

KEPT = (
    "config.yaml",
    "run_info.json",
    "detections.jsonl",
    "skipped.jsonl",
    "metrics.json",
    "gate_baseline.json",
    "junit.xml",
    "summary.md",
)


def _expect(ap: float) -> tuple[str, ...]:
    """The `expected` gate rule for a hand-counted AP (tests/legacy_data.py)."""
    return ("--expect-ap", f"{ap:.4f}", "--tolerance", "0.001")


def _ok(argv: list[str], *allowed: int) -> None:
    code = main([*argv, "--quiet"])
    if code not in (0, *allowed):
        raise SystemExit(f"ssd-eval {' '.join(argv)} exited {code}")


def _commit(checkout: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def make(work: Path, output: Path) -> None:
    data = build(work)
    results = work / "results"
    configs = work / "configs"
    configs.mkdir()
    skip = {"on_bad_image": "skip"}
    out = {"dir": str(results)}
    config_a = write_config(configs / "a.yaml", data.model_a, data.coco, dataset=skip, output=out)
    for k in (1, 2):
        _ok(["--config", str(config_a), "--run-name", f"shard-{k}of2", "--shard", f"{k}/2", *_expect(AP_A)])
    merged = results / "merged"
    _ok(["merge", str(results / "shard-1of2"), str(results / "shard-2of2"), "--output", str(merged)])
    baseline = results / "baseline-a.json"
    _ok(["baseline", str(merged), "--output", str(baseline), "--note", "legacy_v1 fixture"])
    gated = write_config(
        configs / "a-gated.yaml",
        data.model_a,
        data.coco,
        dataset=skip,
        output=out,
        gate={"baseline": str(baseline), "max_baseline_drop": 0.0, "max_class_baseline_drop": 0.0},
    )
    _ok(["--config", str(gated), "--run-name", "run-a", *_expect(AP_A)])
    config_b = write_config(configs / "b.yaml", data.model_b, data.coco, dataset=skip, output=out)
    _ok(["--config", str(config_b), "--run-name", "run-b", *_expect(AP_B)])

    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    for name in ("run-a", "run-b", "shard-1of2", "shard-2of2"):
        (output / name).mkdir()
        for file in KEPT:
            if (results / name / file).is_file():
                shutil.copyfile(results / name / file, output / name / file)
    shutil.copyfile(baseline, output / baseline.name)
    placeholders = (
        (str(data.coco), "@DATA@"),
        (str(data.models), "@MODELS@"),
        (str(results), "@RESULTS@"),
        (str(configs), "@CONFIGS@"),
    )
    for path in sorted(output.rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            for real, placeholder in placeholders:
                text = text.replace(real, placeholder)
            if str(work) in text:
                raise SystemExit(f"{path} still names the work folder {work}")
            path.write_text(text, encoding="utf-8")
    manifest = {
        "made_by": "scripts/make_legacy_fixture.py",
        "ssd_eval_commit": _commit(CHECKOUT),
        "ssd_eval_version": ssd_eval.__version__,
        "placeholders": {
            "@DATA@": "the COCO root (legacy_data.build's coco)",
            "@MODELS@": "the detectors' folder (legacy_data.build's models)",
            "@RESULTS@": "this folder (where the run folders are)",
            "@CONFIGS@": "the folder of the configs the runs started from (not kept; named only)",
        },
        "data_sha256": data.files(),
    }
    (output / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "tests" / "data" / "legacy_v1")
    args = parser.parse_args()
    import helpers

    print(f"ssd_eval from {ssd_eval.__file__}, helpers from {helpers.__file__}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="legacy_v1-") as work:
        make(Path(work), args.output.absolute())
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    cli()
