"""Docs that cannot rot: every shell block of the README and docs/ is run, or says why it is not.

Each fenced block tagged `bash`, `sh`, `shell` or `console` carries, on the line before it, one of

    <!-- doc-test: run -->                      run here, offline, in a scratch folder (must exit 0)
    <!-- doc-test: skip (why) -->               not run: needs the network, a GPU, another environment,
                                                or is a measurement that takes too long for CI
    <!-- doc-test: covered by tests/x.py ... --> run by that test, which reads the block from its page

A `run` block may be followed by a block marked `<!-- doc-test: output -->`: what the commands print
on stdout, line for line, where a line `…` stands for any number of lines and `…` inside a line for
any text. Every other fenced block must say what it is (a language tag: `text`, `yaml`, `python` …) so
that a shell block cannot hide untagged. Relative links between the pages must resolve, anchors included.

The scratch folder looks like a checkout beside `../shared`: `configs`, `benchmarks`, `scripts` and
`docs` are links to this repository's, `../shared` to the real slice when it exists (blocks that
need it skip otherwise). Blocks run with `SSD_EVAL_OFFLINE=1`, so a block that would download fails
here instead of passing on a machine with a network; they share one cache, as a user's commands do.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHARED = REPO.parent / "shared"
SHELL = {"bash", "sh", "shell", "console"}
MARKER = re.compile(
    r"^<!-- doc-test: (run|output|skip \((?P<why>.+)\)|covered by (?P<test>tests/\S+\.py)[^>]*) -->$"
)
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
BLOCK_TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None  # the doc-test marker on the line before, if any

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    start: int | None = None
    lang = ""
    for index, line in enumerate(lines):
        fence = FENCE.match(line)
        if not fence:
            continue
        if start is None:
            start, lang = index, fence["lang"]
            continue
        previous = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        marker = previous.strip() if MARKER.match(previous.strip()) else None
        found.append(Block(page, start + 1, lang, "\n".join(lines[start + 1 : index]) + "\n", marker))
        start = None
    assert start is None, f"{page.name}:{start}: a fenced block is never closed"
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]
SHELL_BLOCKS = [block for block in ALL_BLOCKS if block.lang in SHELL]


def _output_after(block: Block) -> Block | None:
    page_blocks = [b for b in ALL_BLOCKS if b.page == block.page]
    following = page_blocks[page_blocks.index(block) + 1 :]
    if following and following[0].marker == "<!-- doc-test: output -->":
        return following[0]
    return None


def test_every_block_says_what_it_is():
    untagged = [block.where for block in ALL_BLOCKS if not block.lang]
    assert not untagged, f"fenced blocks without a language tag (text, yaml, bash …): {untagged}"
    unmarked = [block.where for block in SHELL_BLOCKS if block.marker is None]
    assert not unmarked, f"shell blocks without a doc-test marker (run / skip (why) / covered by): {unmarked}"
    stray = [b.where for b in ALL_BLOCKS if b.marker == "<!-- doc-test: output -->" and b.lang in SHELL]
    assert not stray, f"output blocks must be text, not shell: {stray}"


COVERED_BLOCKS = [b for b in SHELL_BLOCKS if b.marker and "covered by" in b.marker]


@pytest.mark.parametrize("block", COVERED_BLOCKS, ids=lambda b: b.where)
def test_covered_blocks_are_read_by_their_test(block: Block):
    match = MARKER.match(block.marker or "")
    assert match and match["test"]
    test_file = REPO / match["test"]
    assert test_file.is_file(), f"{block.where}: {match['test']} does not exist"
    source = test_file.read_text(encoding="utf-8")
    page = block.page.relative_to(REPO)
    named = str(page) if page.parent != Path(".") else page.name
    assert f'"{page.name}"' in source or named in source, f"{match['test']} does not read {named}"


def _scratch_checkout(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("configs", "benchmarks", "scripts", "docs"):
        (checkout / name).symlink_to(REPO / name)
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED)
    return checkout


def _environment(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSD_EVAL_", "GITHUB_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SSD_EVAL_HOME"] = str(cache)
    env["SSD_EVAL_OFFLINE"] = "1"
    env["PYTHONPATH"] = str(REPO)  # the checkout under test, whatever is installed
    return env


def output_pattern(expected: str) -> re.Pattern[str]:
    """A doc's output block as a regular expression over the printed lines (see the module docstring)."""
    parts = []
    for line in (line.rstrip() for line in expected.splitlines()):
        if not line:
            continue
        if line == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*".join(re.escape(piece) for piece in line.split("…")) + r"\n")
    return re.compile("".join(parts))


def printed_lines(text: str) -> str:
    return "".join(line.rstrip() + "\n" for line in text.splitlines() if line.strip())


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ssd-eval-cache")


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.where)
def test_shell_block(block: Block, tmp_path: Path, cache: Path):
    match = MARKER.match(block.marker or "")
    if match is None or match[1] == "output":
        pytest.fail(f"{block.where}: no doc-test marker")
    if match["why"]:
        pytest.skip(f"{block.where}: {match['why']}")
    if match["test"]:
        pytest.skip(f"{block.where}: run by {match['test']}")
    if "../shared" in block.text and not SHARED.is_dir():
        pytest.skip(f"{block.where}: needs ../shared (the real val2017 slice), absent here")
    checkout = _scratch_checkout(tmp_path)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.text],
        cwd=checkout,
        env=_environment(cache),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{block.where} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    shown = _output_after(block)
    if shown is not None:
        printed = printed_lines(done.stdout)
        assert output_pattern(shown.text).fullmatch(printed), (
            f"{block.where} printed something other than {shown.where} shows:\n{printed}"
        )


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.M)}


LINK = re.compile(r"\]\((?!https?://|mailto:)([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        missing_anchor = bool(anchor) and resolved.suffix == ".md" and anchor not in _anchors(resolved)
        if not resolved.exists() or missing_anchor:
            broken.append(target)
    assert not broken, f"{page.name}: links that do not resolve: {broken}"


def test_the_output_matcher_fails_on_a_difference():
    """The matcher itself: it must not pass whatever is printed."""
    shown = "check OK\n"
    assert output_pattern(shown).fullmatch("check OK\n")
    assert not output_pattern(shown).fullmatch("check FAILED\n")
    assert not output_pattern(shown).fullmatch("check OK\nmore\n")
    assert output_pattern("a …/x\n…\nend\n").fullmatch("a /tmp/y/x\nb\nc\nend\n")
    assert not output_pattern("a …/x\n…\nend\n").fullmatch("a /tmp/y/x\nb\n")


def _documented_defaults() -> list[tuple[str, str]]:
    """(page, text) pairs: each states a bound or default, formatted here from the code's own value, so
    that changing the code without the docs (or the docs without the code) fails."""
    from ssd_eval.assets.download import DEFAULT_MIN_RATE, DEFAULT_RATE_WINDOW
    from ssd_eval.config.compare import AgreementConfig, PicturesConfig
    from ssd_eval.config.run import DEFAULT_TOLERANCE, PILLOW_MAX_IMAGE_PIXELS
    from ssd_eval.pipeline.output_contract import CARD_MAX_DETECTIONS, NORMALIZED_RANGE

    low, high = NORMALIZED_RANGE
    return [
        ("docs/gates.md", f"`tolerance` (default {DEFAULT_TOLERANCE})"),
        ("README.md", f"the published 0.195 ± {DEFAULT_TOLERANCE}"),
        ("docs/agreement.md", f"`agreement.min_score` ({AgreementConfig().min_score})"),
        ("docs/compare.md", f"IoU >= {AgreementConfig().iou_threshold}, `agreement.iou_threshold`"),
        ("docs/compare.md", f"`pictures.min_score` ({PicturesConfig().min_score})"),
        ("docs/compare.md", f"the output contract's [{low:g}, {high:g}]"),
        ("docs/checks.md", f"boxes within [{low:g}, {high:g}]"),
        ("docs/checks.md", f"the card's {CARD_MAX_DETECTIONS}"),
        ("docs/operations.md", f"`Image.MAX_IMAGE_PIXELS`, {PILLOW_MAX_IMAGE_PIXELS:,}"),
        ("docs/fetching.md", f"last {DEFAULT_RATE_WINDOW:g} s falls below {DEFAULT_MIN_RATE // 1024} KiB/s"),
    ]


def test_documented_defaults_are_the_codes():
    stale = [
        (page, text)
        for page, text in _documented_defaults()
        if text not in " ".join((REPO / page).read_text(encoding="utf-8").split())
    ]
    assert not stale, f"the docs no longer state the code's value: {stale}"
