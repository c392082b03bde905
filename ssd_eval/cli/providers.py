"""`ssd-eval providers`: which execution providers this onnxruntime build offers, and their short names."""

from __future__ import annotations

import argparse

from ssd_eval.errors import EXIT_OK
from ssd_eval.pipeline.session import PROVIDER_ALIASES
from ssd_eval.reports.results import package_versions


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments

    parser = subparsers.add_parser(
        "providers",
        help="list the execution providers available here",
        description="List onnxruntime's execution providers and their short names.",
    )
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    versions = package_versions()
    runtime = next(
        (f"{name} {versions[name]}" for name in versions if name.startswith("onnxruntime")), "onnxruntime"
    )
    available = ort.get_available_providers()
    short_names: dict[str, list[str]] = {}
    for alias, full in PROVIDER_ALIASES.items():
        short_names.setdefault(full, []).append(alias)
    print(f"{runtime}: {len(available)} execution provider(s) built in")
    for full in available:
        print(f"  {full:<28} {', '.join(short_names.get(full, []))}")
    print(
        "Built in is not the same as loadable: ssd-eval checks after creating the session that the requested "
        "provider really runs."
    )
    return EXIT_OK
