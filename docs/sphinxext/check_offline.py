"""Check that built HTML pages load no script or stylesheet from the network.

Usage, after an HTML build::

    python docs/sphinxext/check_offline.py docs/_build/html

Lists every page that loads a script, stylesheet or font from an
``http(s)://`` (or protocol-relative ``//``) address, and exits with status 1
if there is one: such a page shows raw LaTeX or unstyled content offline.
Links to other sites (``<a href>``) are fine.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REMOTE = r"""["'](?:https?:)?//[^"']+["']"""
REMOTE_SCRIPT = re.compile(rf"<script\b[^>]*\bsrc\s*=\s*{REMOTE}", re.IGNORECASE)
# A <link> that loads something (stylesheet, preload, font...), not a
# plain hyperlink such as rel="canonical".
REMOTE_LINK = re.compile(
    rf"<link\b(?=[^>]*\brel\s*=\s*[\"'][^\"']*(?:stylesheet|preload|modulepreload))"
    rf"[^>]*\bhref\s*=\s*{REMOTE}",
    re.IGNORECASE,
)
REMOTE_IMPORT = re.compile(r"@import\s+(?:url\()?\s*[\"']?(?:https?:)?//", re.I)


def remote_resources(html: str) -> list[str]:
    """The tags of ``html`` that load a resource from the network."""
    return [
        match.group(0)
        for pattern in (REMOTE_SCRIPT, REMOTE_LINK, REMOTE_IMPORT)
        for match in pattern.finditer(html)
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(f"usage: {Path(__file__).name} BUILT_HTML_FOLDER", file=sys.stderr)
        return 2
    root = Path(argv[0])
    pages = sorted(root.rglob("*.html"))
    if not pages:
        print(f"no HTML page under {root}", file=sys.stderr)
        return 2
    failures = 0
    for page in pages:
        for tag in remote_resources(page.read_text(encoding="utf-8")):
            failures += 1
            print(f"{page.relative_to(root)}: {tag}")
    if failures:
        print(f"{failures} network resource(s) in {len(pages)} pages", file=sys.stderr)
        return 1
    print(f"{len(pages)} pages load nothing from the network")
    return 0


if __name__ == "__main__":
    sys.exit(main())
