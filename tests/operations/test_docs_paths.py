"""Every file or folder of the repository that README.md and docs/*.md name exists, and every
link between them reaches a page and a heading that exist: a page that points a newcomer at a
moved or deleted file is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Generated at run time, never in the repository.
GENERATED = ("var/", ".venv/")
# A repository path is anything that starts with one of the repository's own top-level names.
TOP_LEVEL = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and (p.name == ".ci" or p.name[0] not in "._"))
_NAMES = "|".join(re.escape(n) for n in TOP_LEVEL)
PATH = re.compile(rf"(?<![\w/.:$-])((?:{_NAMES})(?:/[\w.@-]*)+)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def cited_paths(text: str) -> set[str]:
    found = set()
    for match in PATH.finditer(text):
        path = match.group(1).rstrip(".")
        if not path.startswith(GENERATED) and not path.endswith("/s"):  # "orders/s" is a rate
            found.add(path)
    return found


def test_the_pattern_finds_paths_and_leaves_urls_and_modules_alone():
    text = "see `eventbus/runtime/relay.py`, tests/faults/ and docs/api.md; not /api/orders/ nor config.asgi"
    assert cited_paths(text) == {"eventbus/runtime/relay.py", "tests/faults/", "docs/api.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_repository_path_a_page_names_exists(page):
    missing = sorted(p for p in cited_paths(page.read_text()) if not (ROOT / p).exists())
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_of_a_page_reaches_a_file_and_heading_that_exist(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to what does not exist: {broken}"
