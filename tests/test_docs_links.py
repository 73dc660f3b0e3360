"""Every relative link and ``#anchor`` in README.md and docs/*.md resolves (``make docs-check``).

Anchors follow GitHub's heading slugs: the heading's text lowercased, punctuation other than
hyphens, underscores and spaces dropped, spaces turned into hyphens, and ``-1``, ``-2``, ... added
to repeated slugs. Links to other sites (http, https, mailto) are not checked: no network here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 350

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`+[^`]*`+")
# [text](target "title") and ![alt](target); the text may hold one level of brackets or an image.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_TARGET = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]*)\"", re.IGNORECASE)
HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
EXTERNAL = ("http://", "https://", "mailto:")


def slug(text: str) -> str:
    """GitHub's anchor for a heading's text (before duplicate suffixes)."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)  # images -> alt text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links -> their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def prose_lines(markdown: str) -> list[str]:
    """The lines outside fenced code blocks, inline code spans removed."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def anchors(markdown: str) -> set[str]:
    """Every anchor a page offers: its headings' slugs (with duplicate suffixes) and HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(markdown):
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(HTML_ANCHOR.findall(line))
    return found


def link_targets(markdown: str) -> list[str]:
    """The targets of the page's links and images, code excluded."""
    targets = []
    for line in prose_lines(markdown):
        reference = REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
            continue
        line = INLINE_CODE.sub("", line)
        targets += LINK.findall(line)
        targets += HTML_TARGET.findall(line)
    return targets


def broken_links(page: Path) -> list[str]:
    """``"target: why"`` for each relative link of ``page`` that does not resolve."""
    problems = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if not target or target.startswith(EXTERNAL):
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            problems.append(f"{target}: no file {os.path.relpath(destination, ROOT)}")
            continue
        if anchor:
            if destination.is_dir() or destination.suffix.lower() != ".md":
                problems.append(f"{target}: an anchor into a page that is not Markdown")
            elif anchor not in anchors(destination.read_text(encoding="utf-8")):
                problems.append(f"{target}: no heading gives #{anchor} in {destination.name}")
    return problems


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(page):
    assert broken_links(page) == []


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES


def test_slugs_follow_github():
    assert slug("The contract") == "the-contract"
    assert slug("Choosing the blend (oracle benchmark)") == "choosing-the-blend-oracle-benchmark"
    assert slug("X/Y/Z plot through the API") == "xyz-plot-through-the-api"
    assert slug("In a real A1111 v1.10.1") == "in-a-real-a1111-v1101"
    assert slug('"Soft Inpainting" is `refused`') == "soft-inpainting-is-refused"
    assert slug("Uniform maps: how close to plain img2img") == "uniform-maps-how-close-to-plain-img2img"
    assert slug("[Linked](other.md) heading") == "linked-heading"
    assert anchors("# Cost\n## Cost\n```\n# not a heading\n```\n## Cost\n") == {"cost", "cost-1", "cost-2"}


def test_the_check_finds_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "real.png").write_bytes(b"")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Title\n## Part\n"
        "[ok](#part) [ok](page.md#title) ![ok](real.png) [web](https://example.com/x#y)\n"
        "`[code](missing.md)`\n```\n[fenced](missing.md)\n```\n"
        "[gone](missing.md) [no anchor](#nowhere) ![gone](docs/real.png) [png anchor](real.png#a)\n",
        encoding="utf-8",
    )
    assert [problem.split(":")[0] for problem in broken_links(page)] == [
        "missing.md",
        "#nowhere",
        "docs/real.png",
        "real.png#a",
    ]
