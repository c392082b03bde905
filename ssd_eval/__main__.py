"""`python -m ssd_eval` entry point."""

from __future__ import annotations

import sys

from ssd_eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
