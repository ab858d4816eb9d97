"""The documentation: the mkdocs site builds without a warning, and the README stays a
short front page whose links lead somewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

README = ROOT / "README.md"
README_MAX_LINES = 150
# [text](target) and ![alt](target); a target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def test_the_site_builds_in_strict_mode(tmp_path: Path):
    # strict (mkdocs.yml and --strict): a link to a missing page or anchor, or a page left
    # out of the nav, is an error.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "index.html").is_file()


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()

    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it at most {README_MAX_LINES} and move "
        "the details into docs/"
    )


def relative_links(markdown: str) -> list[str]:
    """The link targets of `markdown` outside code blocks that name a file of the repo."""
    prose = FENCE.sub("", markdown)
    targets = LINK.findall(prose)
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", t, re.I)]


def test_every_relative_link_of_the_readme_leads_to_a_file():
    links = relative_links(README.read_text(encoding="utf-8"))

    assert links, "no relative links found: the pattern no longer matches README.md"
    missing = [
        link for link in links if not (README.parent / link.split("#", 1)[0]).resolve().exists()
    ]
    assert missing == []


def test_relative_links_are_found_and_others_ignored():
    markdown = (
        "[a](docs/a.md) ![b](docs/b.png) [c](docs/c.md#part) [d](https://example.com)\n"
        "[e](#top) [f](mailto:x@example.com)\n```\n[g](inside/a/fence.md)\n```\n"
    )

    assert relative_links(markdown) == ["docs/a.md", "docs/b.png", "docs/c.md#part"]
