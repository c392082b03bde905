"""Speed and scale, side by side in one run: feed rate, harness overhead, scoring, fidelity, a whole run.

    python benchmarks/bench_speed.py                      # everything (~20-30 min on 2 cores)
    python benchmarks/bench_speed.py --skip-twin          # no 1200 twin (~15 min)

(a) feed rate on the real 50-image slice with a zero-cost model (the harness's own ceiling), per
    preprocessing backend, against a loop of the model card's preprocessing code;
(b) harness wall time against a bare `session.run` loop on the 1200 twin (same images, same
    session options), with per-stage times; and each backend's fidelity on the twin: detections
    and AP against the pillow reference;
(c) `ssd-eval score RUN_DIR` on a generated val2017-sized run (5000 images, ~36.8k boxes,
    190 detections/image): wall time, scoring time and peak RSS per scorer (each a fresh process,
    the minimum of --scoring-repeats), and a plain pycocotools script on the same files (COCO(),
    loadRes of detections.json, evaluate, accumulate, summarize); 12 stats and per-category AP
    compared with pycocotools';
(d) a whole `ssd-eval` run over 5000 images (the real slice's 50 images again and again under new
    ids) with a zero-cost model that emits 190 constant detections per image, scorer numpy:
    wall time and peak RSS of the process.
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


def zero_cost_model(path: Path, size: int = 1200, detections: int = 1) -> Path:
    """Takes a [1, 3, size, size] image, ignores it, emits the same `detections` every time."""
    rng = np.random.default_rng(0)
    x1, x2 = np.sort(rng.uniform(0.0, 1.0, (2, detections)), axis=0)
    y1, y2 = np.sort(rng.uniform(0.0, 1.0, (2, detections)), axis=0)
    consts = {
        "bboxes": np.stack([x1, y1, x2, y2], axis=1)[None].astype(np.float32),
        "labels": rng.integers(1, 81, (1, detections)).astype(np.int64),
        "scores": rng.uniform(0.05, 1.0, (1, detections)).astype(np.float32),
    }
    nodes = [helper.make_node("Identity", [f"{k}_c"], [k]) for k in consts]
    graph = helper.make_graph(
        nodes,
        "zero_cost",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [
            helper.make_tensor_value_info("bboxes", TensorProto.FLOAT, [1, detections, 4]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [1, detections]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, detections]),
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

# What a user without ssd_eval would write: the results file through pycocotools' own loaders.
_PLAIN_PYCOCOTOOLS = """
import json, sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt = COCO(sys.argv[1])
dt = gt.loadRes(sys.argv[2])
evaluator = COCOeval(gt, dt, "bbox")
evaluator.params.imgIds = sorted({a["image_id"] for a in gt.dataset["annotations"]})
evaluator.evaluate(); evaluator.accumulate(); evaluator.summarize()
hwm = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
print("STATS", json.dumps([float(v) for v in evaluator.stats]), file=sys.stderr)
print("VmHWM", hwm, file=sys.stderr)
"""

SCORERS = ("numpy", "faster-coco-eval", "pycocotools")


def timed_child(args: list[str]) -> tuple[float, float, str, int]:
    """Run `python args` in a fresh process: (wall s, peak RSS MB from its own VmHWM, stderr, exit code).

    The child reports its own VmHWM: ru_maxrss would include this process's, which Linux carries
    over fork + exec.
    """
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    wall = time.perf_counter() - start
    peak_kb = int(proc.stderr.rsplit("VmHWM", 1)[1].split()[0]) if "VmHWM" in proc.stderr else 0
    return wall, peak_kb / 1024, proc.stderr, proc.returncode


def _per_category_ap(metrics: dict) -> dict[int, tuple]:
    return {c["category_id"]: (c["ap"], c["ap50"]) for c in metrics["per_category"]}


def bench_scoring(work: Path, num_images: int, repeats: int, reference_repeats: int) -> dict:
    start = time.perf_counter()
    run = fake_run_folder(work / "scoring", num_images)
    print(f"generated run folder in {time.perf_counter() - start:.1f} s", flush=True)
    out: dict = {"images": num_images, "backends": {}}
    metrics_of = {}
    for backend in SCORERS:
        cmd = ["-c", _SCORE_CHILD, "score", str(run), "--scorer", backend, "--quiet"]
        rows = []
        for _ in range(reference_repeats if backend == "pycocotools" else repeats):
            wall, peak_mb, _, code = timed_child(cmd)
            metrics = json.loads((run / "metrics.json").read_text())
            rows.append((wall, peak_mb, metrics["timings"]["score"]["total_s"], code))
        metrics_of[backend] = metrics
        out["backends"][backend] = {
            "exit_codes": [r[3] for r in rows],
            "rescore_wall_s": [round(r[0], 2) for r in rows],
            "rescore_wall_min_s": round(min(r[0] for r in rows), 2),
            "scoring_s_min": round(min(r[2] for r in rows), 2),
            "peak_rss_mb": [round(r[1], 1) for r in rows],
            "num_detections": metrics["num_detections"],
            "stats": metrics["stats"],
        }
        print(f"score {backend}: {out['backends'][backend]}", flush=True)
    plain = []
    for _ in range(reference_repeats):
        args = [
            "-c",
            _PLAIN_PYCOCOTOOLS,
            str(work / "scoring" / "coco" / "annotations" / "instances_val2017.json"),
        ]
        wall, peak_mb, err, code = timed_child([*args, str(run / "detections.json")])
        plain.append((wall, peak_mb, code))
    plain_stats = json.loads(err.split("STATS", 1)[1].splitlines()[0])
    out["plain_pycocotools_script"] = {
        "exit_codes": [r[2] for r in plain],
        "wall_s": [round(r[0], 2) for r in plain],
        "wall_min_s": round(min(r[0] for r in plain), 2),
        "peak_rss_mb": [round(r[1], 1) for r in plain],
        "stats": plain_stats,
    }
    print(f"plain pycocotools script: {out['plain_pycocotools_script']}", flush=True)
    ref = metrics_of["pycocotools"]
    plain_min = out["plain_pycocotools_script"]["wall_min_s"]
    for backend in SCORERS:
        row, got = out["backends"][backend], metrics_of[backend]
        row["max_abs_stat_difference_to_pycocotools"] = max(
            abs(ref["stats"][k] - got["stats"][k]) for k in ref["stats"]
        )
        row["stats_identical_to_pycocotools"] = got["stats"] == ref["stats"]
        row["stats_identical_to_plain_script"] = list(got["stats"].values()) == plain_stats
        mine, theirs = _per_category_ap(got), _per_category_ap(ref)
        row["per_category_ap_identical_to_pycocotools"] = mine == theirs
        row["max_abs_per_category_ap_difference"] = max(
            (
                abs(a - b)
                for k in theirs
                for a, b in zip(mine[k], theirs[k], strict=True)
                if a is not None and b is not None
            ),
            default=0.0,
        )
        row["rescore_wall_over_plain_script"] = round(row["rescore_wall_min_s"] / plain_min, 4)
    return out


def slice_copies(folder: Path, num_images: int) -> Path:
    """A COCO root of `num_images` images: the real slice's images again and again under new ids."""
    coco = json.loads((SLICE / "annotations" / "instances_val2017.json").read_text())
    sources = sorted(coco["images"], key=lambda im: im["id"])
    anns_of: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        anns_of.setdefault(ann["image_id"], []).append(ann)
    (folder / "annotations").mkdir(parents=True)
    (folder / "val2017").mkdir()
    images, annotations = [], []
    for i in range(num_images):
        src = sources[i % len(sources)]
        new_id = 1_000_000 + i
        name = f"{new_id:012d}.jpg"
        os.symlink(SLICE / "val2017" / src["file_name"], folder / "val2017" / name)
        images.append({**src, "id": new_id, "file_name": name})
        for ann in anns_of.get(src["id"], []):
            annotations.append({**ann, "id": len(annotations) + 1, "image_id": new_id})
    tree = {**coco, "images": images, "annotations": annotations}
    (folder / "annotations" / "instances_val2017.json").write_text(json.dumps(tree))
    return folder


def bench_whole_run(work: Path, num_images: int, detections: int, repeats: int) -> dict:
    """A whole `ssd-eval` run (fresh process) with a zero-cost model: the harness's own time and memory."""
    root = slice_copies(work / "whole" / "coco", num_images)
    model = zero_cost_model(work / "whole" / "zero_cost_190.onnx", detections=detections)
    out: dict = {"images": num_images, "detections_per_image": detections, "runs": []}
    for r in range(repeats):
        config = work / "whole" / f"run{r}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "model": {"path": str(model)},
                    "dataset": {"root": str(root), "selection": "all"},
                    "scoring": {"backend": "numpy"},
                    "output": {"dir": str(work / "whole" / "runs"), "run_name": f"run{r}", "overwrite": True},
                }
            )
        )
        wall, peak_mb, _, code = timed_child(["-c", _SCORE_CHILD, "--config", str(config), "--quiet"])
        metrics = json.loads((work / "whole" / "runs" / f"run{r}" / "metrics.json").read_text())
        row = {
            "exit_code": code,
            "wall_s": round(wall, 2),
            "peak_rss_mb": round(peak_mb, 1),
            "num_images": metrics["protocol"]["num_images"],
            "num_detections": metrics["num_detections"],
            "score_s": metrics["timings"]["score"]["total_s"],
            "images_per_s": metrics["images_per_s"],
            "load_average": load_average(),
        }
        out["runs"].append(row)
        print(f"whole run {r}: {row}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-twin", action="store_true", help="skip (b), the 1200 twin (~10 min)")
    parser.add_argument("--skip-scoring", action="store_true", help="skip (c)")
    parser.add_argument("--skip-whole-run", action="store_true", help="skip (d)")
    parser.add_argument("--skip-feed", action="store_true", help="skip (a)")
    parser.add_argument(
        "--twin-backends", nargs="+", choices=BACKENDS, default=list(BACKENDS), help="backends on the twin"
    )
    parser.add_argument("--repeats", type=int, default=3, help="feed-rate repeats (median)")
    parser.add_argument("--scoring-images", type=int, default=5000)
    parser.add_argument("--scoring-repeats", type=int, default=3, help="re-scores per fast scorer (min)")
    parser.add_argument(
        "--reference-repeats",
        type=int,
        default=1,
        help="pycocotools re-scores and plain-script runs (~2 min each)",
    )
    parser.add_argument("--whole-run-images", type=int, default=5000)
    parser.add_argument("--whole-run-repeats", type=int, default=1)
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
            report["scoring"] = bench_scoring(
                work, args.scoring_images, args.scoring_repeats, args.reference_repeats
            )
            report["load_average_after_scoring"] = load_average()
        if not args.skip_whole_run:
            report["whole_run"] = bench_whole_run(work, args.whole_run_images, 190, args.whole_run_repeats)
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
