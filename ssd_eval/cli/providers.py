"""`ssd-eval providers`: which execution providers this onnxruntime build offers, and their short names."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd_eval.errors import EXIT_OK
from ssd_eval.pipeline.session import PROVIDER_ALIASES
from ssd_eval.reports.results import runtime_distributions


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

    runtimes = runtime_distributions()
    runtime = runtimes[0] if len(runtimes) == 1 else "onnxruntime"
    available = ort.get_available_providers()
    short_names: dict[str, list[str]] = {}
    for alias, full in PROVIDER_ALIASES.items():
        short_names.setdefault(full, []).append(alias)
    print(f"{runtime}: {len(available)} execution provider(s) built in (module {Path(ort.__file__).parent})")
    for full in available:
        print(f"  {full:<28} {', '.join(short_names.get(full, []))}")
    print(
        "Built in is not the same as loadable: ssd-eval checks after creating the session that the requested "
        "provider really runs."
    )
    if len(runtimes) > 1:
        print(
            f"warning: {len(runtimes)} packages provide the onnxruntime module ({', '.join(runtimes)}) "
            "and overwrite each other's files: pip uninstall all of them, then install the one you want"
        )
    return EXIT_OK
