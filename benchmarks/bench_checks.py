"""Time of the annotation file checks on a generated val2017-sized file (5000 images, 36,781 boxes).

    python benchmarks/bench_checks.py

Prints the best of 7 runs of `find_offences` (the checks alone) and, for scale, of `json.loads`
of the same file. No assertions.
"""

from __future__ import annotations

import json
import time

import numpy as np

from ssd_eval.data.annotation_checks import find_offences
from ssd_eval.twin.fake_detections import make_fake_set

VAL2017_ANNOTATIONS = 36_781


def _best_of(runs: int, action: object) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    data = make_fake_set(detections_per_image=1).coco_json
    anns = data["annotations"]
    # Pad or cut to val2017's exact count (crowd flags and areas as generated).
    rng = np.random.default_rng(1)
    while len(anns) < VAL2017_ANNOTATIONS:
        extra = dict(anns[int(rng.integers(len(anns)))])
        extra["id"] = len(anns) + 1
        anns.append(extra)
    del anns[VAL2017_ANNOTATIONS:]
    text = json.dumps(data)
    parsed = json.loads(text)
    checks = _best_of(7, lambda: find_offences(parsed))
    parse = _best_of(3, lambda: json.loads(text))
    print(
        f"{len(parsed['images'])} images, {len(parsed['annotations'])} annotations, "
        f"{len(text) / 1e6:.1f} MB JSON: checks {checks * 1000:.1f} ms (best of 7), "
        f"json.loads {parse * 1000:.1f} ms (best of 3), offences {len(find_offences(parsed))}"
    )


if __name__ == "__main__":
    main()
