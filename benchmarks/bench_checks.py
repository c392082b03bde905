"""Cost of the input checks: the annotation file's and the model outputs' (issue 10).

    python benchmarks/bench_checks.py

Prints the best of 7 runs of `find_offences` on a generated val2017-sized file (5000 images,
36,781 annotations) and, for scale, of `json.loads` of the same file; then the median time of the
per-image output checks (`check_output_arrays` + `check_output_values`) on 200 detections, the
card's maximum. No assertions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ssd_eval.config.run import OutputNames
from ssd_eval.data.annotation_checks import find_offences
from ssd_eval.pipeline.output_contract import check_output_arrays, check_output_values
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

    rng = np.random.default_rng(0)
    corners = rng.uniform(-0.05, 0.9, (1, 200, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(0, 0.1, (1, 200, 2))], axis=2).astype(np.float32)
    labels = rng.integers(1, 81, (1, 200))
    scores = rng.uniform(0.05, 1.0, (1, 200)).astype(np.float32)
    names = OutputNames()
    samples = []
    for _ in range(2000):
        start = time.perf_counter()
        check_output_arrays(boxes, labels, scores, names, model=Path("m.onnx"))
        check_output_values(
            boxes[0].astype(np.float64), labels[0], scores[0].astype(np.float64), image_id=1, num_labels=80
        )
        samples.append(time.perf_counter() - start)
    print(f"output checks on 200 detections: median {np.median(samples) * 1e6:.1f} us per image (2000 runs)")


if __name__ == "__main__":
    main()
