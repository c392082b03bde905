"""`ssd-eval fetch [model|data|annotations|all]`: download and verify the model and COCO val2017."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd_eval.assets.fetch import (
    ALREADY_PRESENT,
    DOWNLOADED,
    ENV_HOME,
    ENV_MIRROR,
    ENV_OFFLINE,
    EXTRACTED,
    FETCH_TARGETS,
    cache_home,
    downloads_allowed,
    fetch,
)
from ssd_eval.assets.sources import DEFAULT_MODEL, MODELS
from ssd_eval.errors import EXIT_OK

_STATUS_TEXT = {
    DOWNLOADED: "downloaded and verified",
    EXTRACTED: "extracted from the archives already in the cache",
    ALREADY_PRESENT: "already present, nothing to do",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ssd_eval.cli import add_common_arguments

    parser = subparsers.add_parser(
        "fetch",
        help="download and verify the model and COCO val2017 into the cache",
        description=(
            "Download the zoo's SSD model and/or COCO val2017 into the cache, verify their checksums "
            "and extract what the evaluation needs (`annotations`: only the annotation file, enough to "
            "score and merge). Interrupted downloads resume; files already there are not fetched again. "
            f"With --offline or {ENV_OFFLINE}=1 no request is made: the cache is only checked (and "
            "archives already there extracted)."
        ),
    )
    parser.add_argument(
        "what",
        nargs="?",
        choices=FETCH_TARGETS,
        default="all",
        help="what to fetch (default: all = model and data; annotations: the annotation file alone)",
    )
    parser.add_argument(
        "--model-name",
        default=DEFAULT_MODEL,
        metavar="NAME",
        help=f"which model (default: {DEFAULT_MODEL}; known: {', '.join(MODELS)})",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"cache root (default: ${ENV_HOME}, else $XDG_CACHE_HOME/ssd_eval, else ~/.cache/ssd_eval)",
    )
    parser.add_argument(
        "--mirror",
        default=None,
        metavar="URL",
        help=f"base URL tried first for every file (or ${ENV_MIRROR})",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help=f"make no request (also {ENV_OFFLINE}=1): check the cache and say what is missing",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    results = fetch(
        args.what,
        cache=cache_home(args.dest),
        model_name=args.model_name,
        allow_download=downloads_allowed(not args.offline),
        mirror=args.mirror,
        progress=not (args.no_progress or args.quiet),
    )
    for result in results:
        print(f"{result.name}: {result.path} ({_STATUS_TEXT.get(result.status, result.status)})")
    return EXIT_OK
