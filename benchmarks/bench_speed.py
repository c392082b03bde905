"""Speed and scale, side by side in one run: feed rate, harness overhead, scoring, fidelity.

    python benchmarks/bench_speed.py                      # everything (~10-15 min on 2 cores)
    python benchmarks/bench_speed.py --skip-twin          # feed rate + scoring only (~3 min)

(a) feed rate on the real 50-image slice with a zero-cost model (the harness's own ceiling), per
    preprocessing backend, against a loop of the model card's preprocessing code;
(b) harness wall time against a bare `session.run` loop on the 1200 twin (same images, same
    session options), with per-stage times; and each backend's fidelity on the twin: detections
    and AP against the pillow reference;
(c) `ssd-eval score RUN_DIR` on a generated val2017-sized run (5000 images, ~36.8k boxes,
    190 detections/image): wall time, scoring time and peak RSS per scorer, stats compared.
Writes results/bench/speed-<time>.json (and results/bench/speed-latest.json). No assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from ssd_eval.config.run import IMAGENET_MEAN, IMAGENET_STD, load_config
from ssd_eval.config.schema import config_to_dict
from ssd_eval.data.dataset import load_rgb
from ssd_eval.engine.run_folder import RunInfo, write_run_info
from ssd_eval.engine.runner import RunOptions, run_evaluation
from ssd_eval.evaluation.detection_log import DetectionLog, write_results_json
from ssd_eval.pipeline.preprocess import Normalization, preprocess
from ssd_eval.reports.results import ModelInfo, package_versions
from ssd_eval.twin.fake_detections import make_fake_set

ROOT = Path(__file__).resolve().parents[1]
SLICE = ROOT.parent / "shared" / "data" / "coco_val2017_first50"
BACKENDS = ("pillow", "opencv", "onnx-normalize", "onnx-resize")


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def zero_cost_model(path: Path, size: int = 1200) -> Path:
    """Takes a [1, 3, size, size] image, ignores it, emits one constant detection."""
    consts = {
        "bboxes": np.array([[[0.1, 0.1, 0.5, 0.5]]], np.float32),
        "labels": np.array([[1]], np.int64),
        "scores": np.array([[0.9]], np.float32),
    }
    nodes = [helper.make_node("Identity", [f"{k}_c"], [k]) for k in consts]
    graph = helper.make_graph(
        nodes,
        "zero_cost",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [
            helper.make_tensor_value_info("bboxes", TensorProto.FLOAT, [1, 1, 4]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [1, 1]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1]),
        ],
        initializer=[numpy_helper.from_array(v, f"{k}_c") for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = 5
    onnx.save(model, path)
    return path


def card_preprocess(path: Path, size: int = 1200) -> np.ndarray:
    """The model card's sample code (with the RGB conversion it forgot)."""
    img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    data = np.transpose(np.array(img), [2, 0, 1])[None]
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    out = np.zeros(data.shape).astype("float32")
    for i in range(3):
        out[:, i, :, :] = (data[:, i, :, :] / 255 - mean[i]) / std[i]
    return out


def harness(model: Path, work: Path, name: str, backend: str, **preprocess: object) -> dict:
    """One `run_evaluation` on the slice; returns its metrics.json plus the wall time without scoring."""
    config_path = work / f"{name}.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "model": {"path": str(model)},
                "dataset": {"root": str(SLICE), "selection": "all"},
                "preprocess": {"backend": backend, **preprocess},
                "output": {"dir": str(work / "runs"), "run_name": name, "overwrite": True},
            }
        )
    )
    result = run_evaluation(load_config(config_path), RunOptions(config_name=name))
    data = result.to_json()
    data["wall_without_scoring_s"] = result.wall_s - result.timings["score"].total_s
    return data


def bench_feed(work: Path, repeats: int) -> dict:
    files = sorted((SLICE / "val2017").glob("*.jpg"))
    model = zero_cost_model(work / "zero_cost.onnx")
    card_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for f in files:
            card_preprocess(f)
        card_times.append(time.perf_counter() - start)
    card_rate = len(files) / statistics.median(card_times)
    rows = {"card_code": {"img_per_s": round(card_rate, 1), "ratio_to_card": 1.0}}
    for backend in BACKENDS:
        rates, stages = [], {}
        for r in range(repeats):
            data = harness(model, work, f"feed-{backend}-{r}", backend)
            rates.append(len(files) / data["wall_without_scoring_s"])
            stages = {k: v["median_ms"] for k, v in data["timings"].items() if k not in ("score",)}
        rate = statistics.median(rates)
        rows[backend] = {
            "img_per_s": round(rate, 1),
            "ratio_to_card": round(rate / card_rate, 2),
            "median_ms": stages,
        }
        print(f"feed {backend}: {rate:.1f} img/s ({rate / card_rate:.2f}x the card's code)", flush=True)
    return {"images": len(files), "repeats": repeats, "rows": rows}


def bare_loop(twin: Path, tensors: list[np.ndarray]) -> tuple[float, float, float]:
    """Session creation and a bare `session.run` loop: (create s, run total s, median run ms)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    start = time.perf_counter()
    session = ort.InferenceSession(str(twin), sess_options=options, providers=["CPUExecutionProvider"])
    create_s = time.perf_counter() - start
    runs = []
    for tensor in tensors:
        start = time.perf_counter()
        session.run(None, {"image": tensor})
        runs.append(time.perf_counter() - start)
    return create_s, sum(runs), statistics.median(runs) * 1e3


def bench_twin(work: Path, backends: list[str]) -> dict:
    from ssd_eval.twin.model import ensure_twin

    cache = Path(os.environ.get("SSD_EVAL_HOME", Path.home() / ".cache" / "ssd_eval"))
    twin = ensure_twin(1200, 0, cache / "twins")
    files = sorted((SLICE / "val2017").glob("*.jpg"))
    norm = Normalization.from_mean_std(IMAGENET_MEAN, IMAGENET_STD)
    tensors = [preprocess(load_rgb(f), (1200, 1200), norm) for f in files]
    # Bare loop, harness (pillow), bare loop again: the mean of the two bares cancels a slow drift
    # of the machine's load (it is shared).
    bares = [bare_loop(twin, tensors)]
    print(f"bare: {bares[0]}", flush=True)
    runs = {"pillow": harness(twin, work, "twin-pillow", "pillow")}
    bares.append(bare_loop(twin, tensors))
    print(f"bare again: {bares[1]}", flush=True)
    bare_s = statistics.mean(c + r for c, r, _ in bares)
    out: dict = {
        "model": str(twin),
        "images": len(files),
        "bare": [
            {"session_create_s": round(c, 3), "run_total_s": round(r, 3), "run_median_ms": round(m, 1)}
            for c, r, m in bares
        ],
        "bare_mean_s": round(bare_s, 3),
        "backends": {},
    }
    reference = None
    for backend in backends:
        data = runs[backend] if backend in runs else harness(twin, work, f"twin-{backend}", backend)
        dets = (work / "runs" / f"twin-{backend}" / "detections.jsonl").read_text()
        row = {
            "harness_s": round(data["wall_without_scoring_s"], 3),
            "ratio_harness_over_bare": round(data["wall_without_scoring_s"] / bare_s, 4),
            "AP": data["stats"]["AP"],
            "AP50": data["stats"]["AP50"],
            "num_detections": data["num_detections"],
            "median_ms": {k: v["median_ms"] for k, v in data["timings"].items()},
        }
        if reference is None:
            reference = (data, dets)
        else:
            ref_data, ref_dets = reference
            row["AP_minus_pillow"] = data["stats"]["AP"] - ref_data["stats"]["AP"]
            row["AP50_minus_pillow"] = data["stats"]["AP50"] - ref_data["stats"]["AP50"]
            row["detections_identical_to_pillow"] = dets == ref_dets
            row["images_with_different_detections"] = sum(
                a != b for a, b in zip(dets.splitlines(), ref_dets.splitlines(), strict=False)
            )
        out["backends"][backend] = row
        print(f"twin {backend}: {row}", flush=True)
    return out


def fake_run_folder(folder: Path, num_images: int) -> Path:
    """A finished run folder holding the generated val2017-sized set, as `ssd-eval run` leaves it."""
    fake = make_fake_set(num_images)
    root = folder / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(fake.coco_json))
    run = folder / "run"
    run.mkdir()
    config = load_config_from_dict(
        {"model": {"path": str(folder / "none.onnx")}, "dataset": {"root": str(root)}}
    )
    (run / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    write_run_info(
        run,
        RunInfo(
            model=ModelInfo(path="generated", sha256="0" * 64, size_bytes=0, source=None),
            input_size=(1200, 1200),
            shard=None,
            providers_requested=("cpu",),
            providers_used=("CPUExecutionProvider",),
            provider_options=({},),
        ),
    )
    with DetectionLog(run / "detections.jsonl") as log:
        for dets in fake.detections:
            log.append(dets)
    write_results_json(run / "detections.json", fake.detections)
    return run


def load_config_from_dict(raw: dict):
    from ssd_eval.config.run import config_from_dict

    return config_from_dict(raw, base_dir=Path.cwd())


_SCORE_CHILD = (
    "import sys; from ssd_eval.cli import main; code = main(sys.argv[1:]); "
    "hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]; "
    "print('VmHWM', hwm, file=sys.stderr); sys.exit(code)"
)


def bench_scoring(work: Path, num_images: int) -> dict:
    start = time.perf_counter()
    run = fake_run_folder(work / "scoring", num_images)
    print(f"generated run folder in {time.perf_counter() - start:.1f} s", flush=True)
    out: dict = {"images": num_images, "backends": {}}
    stats = {}
    for backend in ("pycocotools", "faster-coco-eval"):
        # The child reports its own peak RSS (VmHWM): ru_maxrss would include this process's, which
        # Linux carries over fork + exec.
        cmd = [sys.executable, "-c", _SCORE_CHILD, "score", str(run), "--scorer", backend, "--quiet"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        wall = time.perf_counter() - start
        peak_kb = int(proc.stderr.rsplit("VmHWM", 1)[1].split()[0])
        metrics = json.loads((run / "metrics.json").read_text())
        stats[backend] = metrics["stats"]
        out["backends"][backend] = {
            "exit_code": proc.returncode,
            "rescore_wall_s": round(wall, 2),
            "scoring_s": metrics["timings"]["score"]["total_s"],
            "peak_rss_mb": round(peak_kb / 1024, 1),
            "num_detections": metrics["num_detections"],
            "stats": metrics["stats"],
        }
        print(f"score {backend}: {out['backends'][backend]}", flush=True)
    ref, fast = stats["pycocotools"], stats["faster-coco-eval"]
    out["max_abs_stat_difference"] = max(abs(ref[k] - fast[k]) for k in ref)
    py, fc = out["backends"]["pycocotools"], out["backends"]["faster-coco-eval"]
    out["scoring_time_ratio_fast_over_pycocotools"] = round(fc["scoring_s"] / py["scoring_s"], 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-twin", action="store_true", help="skip (b), the 1200 twin (~10 min)")
    parser.add_argument("--skip-scoring", action="store_true", help="skip (c)")
    parser.add_argument("--skip-feed", action="store_true", help="skip (a)")
    parser.add_argument(
        "--twin-backends", nargs="+", choices=BACKENDS, default=list(BACKENDS), help="backends on the twin"
    )
    parser.add_argument("--repeats", type=int, default=3, help="feed-rate repeats (median)")
    parser.add_argument("--scoring-images", type=int, default=5000)
    parser.add_argument("--output", type=Path, default=ROOT / "results" / "bench")
    args = parser.parse_args()
    report: dict = {
        "command": "python benchmarks/bench_speed.py " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_start": load_average(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "versions": package_versions(),
    }
    with tempfile.TemporaryDirectory(prefix="ssd_eval-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_feed:
            report["feed"] = bench_feed(work, args.repeats)
        report["load_average_after_feed"] = load_average()
        if not args.skip_twin:
            report["twin"] = bench_twin(work, ["pillow", *[b for b in args.twin_backends if b != "pillow"]])
            report["load_average_after_twin"] = load_average()
        if not args.skip_scoring:
            report["scoring"] = bench_scoring(work, args.scoring_images)
    report["load_average_end"] = load_average()
    args.output.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2) + "\n"
    path = args.output / f"speed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(text)
    (args.output / "speed-latest.json").write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
