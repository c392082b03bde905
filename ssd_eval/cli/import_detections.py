"""`ssd-eval import FILE --data ROOT`: a run folder from detections made elsewhere (a COCO results
file, an MLPerf accuracy log), scored and gated like a run; `score`, `baseline` and `compare` then
work on it as on any run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd_eval.engine.import_run import IMPORT_FORMATS, import_detections
from ssd_eval.evaluation.imports.mlperf_log import IMAGE_ORDERS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments
    from ssd_eval.cli.run import add_require_gate

    parser = subparsers.add_parser(
        "import",
        help="make a run folder from detections made elsewhere (COCO results file, MLPerf accuracy log)",
        description="Check and import detections made by another harness (a C++ TensorRT pipeline, Triton, "
        "the MLPerf harness) into an ordinary run folder, score it and apply the gate; `ssd-eval compare "
        "RUN IMPORTED` then gives the detection-level agreement with an onnxruntime run. See docs/import.md.",
    )
    parser.add_argument(
        "file", type=Path, metavar="FILE", help="a COCO results file or mlperf_log_accuracy.json"
    )
    parser.add_argument(
        "--data", type=Path, help="the COCO root the detections were made on (annotations/ inside)"
    )
    parser.add_argument(
        "--format", choices=IMPORT_FORMATS, help="the file's format (default: told from its first record)"
    )
    parser.add_argument(
        "--config",
        help="a run config whose dataset, scoring, expected and gate sections apply (default: coco_val.yaml, "
        "the published protocol and ssd-10's figures)",
    )
    parser.add_argument("--output", type=Path, help="folder receiving the run folder (default ./results)")
    parser.add_argument("--run-name", help="the run folder's name (default import-<format>-<time>)")
    parser.add_argument("--producer", help='what made the detections, recorded, e.g. "TensorRT 8.6 fp16"')
    parser.add_argument(
        "--model",
        help="the model file that made them (or a known model name, e.g. ssd-10); default: not known, and "
        "rules tied to a model's sha256 are not comparable",
    )
    parser.add_argument("--model-sha256", help="the sha256 of the model that made them (instead of --model)")
    parser.add_argument(
        "--selection",
        choices=("annotated", "all"),
        help="the evaluated images (default: the config's; for an MLPerf log, all with --image-order file, "
        "else annotated)",
    )
    parser.add_argument(
        "--image-order",
        choices=IMAGE_ORDERS,
        help="MLPerf: the image list qsl_idx indexes: file (the annotation file's images, default), "
        "annotated "
        "(its annotated images in file order: the harness without empty images), annotated-set "
        "(accuracy-coco.py --remove-48-empty-images' order)",
    )
    parser.add_argument(
        "--ignore-extra",
        action="store_true",
        help="leave out records of images outside the selection (recorded) instead of refusing the file",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing run folder of that name"
    )
    add_require_gate(parser)
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ssd_eval.cli.run import invocation, print_evaluation

    evaluation = import_detections(
        args.file,
        data=args.data,
        format=args.format,
        config=args.config,
        output=args.output,
        run_name=args.run_name,
        producer=args.producer,
        model=args.model,
        model_sha256=args.model_sha256,
        selection=args.selection,
        image_order=args.image_order,
        ignore_extra=args.ignore_extra,
        overwrite=args.overwrite,
        require_gate=args.require_gate,
        invocation=invocation(args, "import"),
    )
    return print_evaluation(evaluation, quiet=args.quiet)
