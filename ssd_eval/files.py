"""The files ssd_eval writes: the run folder's file names, one atomic writer, one sha256.

Every module that reads or writes a run folder names its files from here, so the layout (and the
list of files an overwrite replaces) is defined once.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

# A run folder (`ssd-eval run`, `score`, `merge`, a comparison's runs/<name>/).
CONFIG_FILE = "config.yaml"  # the resolved config the run started with
IDENTITY_FILE = "identity.json"  # what the run is: written once before the first image, never changed
RUN_INFO_FILE = "run_info.json"  # model file and providers, written before the first image
HISTORY_FILE = "history.jsonl"  # one line per command that worked on the folder (run, resume, score, merge)
DETECTION_LOG = "detections.jsonl"  # the detections, one image a line, appended as they are made
DETECTION_STORE = "detections.npz"  # a columnar cache of the log (rebuilt when the log changes)
RESULTS_FILE = "detections.json"  # the COCO results file, derived from the log
SKIPPED_LOG = "skipped.jsonl"
METRICS_FILE = "metrics.json"
COCOEVAL_LOG = "cocoeval.txt"
GATE_BASELINE_FILE = "gate_baseline.json"  # the baseline the gate used, copied at gate time
JUNIT_FILE = "junit.xml"
SUMMARY_FILE = "summary.md"
LOCK_FILE = "run.lock"
PR_CURVE_FILE = "pr_curve.png"  # report.pr_curve (a comparison's: pr_curves.png, every run on one plot)
PICTURES_DIR = "pictures"  # report.pictures: the images the model is most wrong on, against the ground truth

# What `output.overwrite` removes from a run folder before a new run starts in it (the lock stays:
# the new run holds it).
RUN_FILES = (
    CONFIG_FILE,
    IDENTITY_FILE,
    RUN_INFO_FILE,
    HISTORY_FILE,
    DETECTION_LOG,
    DETECTION_STORE,
    RESULTS_FILE,
    SKIPPED_LOG,
    METRICS_FILE,
    COCOEVAL_LOG,
    GATE_BASELINE_FILE,
    JUNIT_FILE,
    SUMMARY_FILE,
)

# A comparison folder holds these beside metrics.json, junit.xml and summary.md.
COMPARE_CONFIG_FILE = "compare.yaml"
RUNS_DIR = "runs"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write `path` so that a reader (or a crash) never sees half a file: a temporary file beside it,
    then a rename. The temporary file is removed when the write fails."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    """`write_text_atomic` of indented JSON (no NaN or infinity: JSON has none)."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
