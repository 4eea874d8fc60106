"""The README and docs/ stand alone: no path outside the repository, no dead local link."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_no_page_points_outside_the_repository():
    for page in PAGES:
        text = page.read_text()
        assert "../shared" not in text and "shared/DESIGN" not in text, page.name


def test_local_links_resolve():
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_reference_pages_exist():
    for name in ("protocol.md", "http-api.md", "settings.md", "names.md", "operations.md"):
        assert (ROOT / "docs" / name).is_file(), name
