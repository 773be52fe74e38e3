"""The code blocks of a Markdown guide that name a file (```js file=metrics.js), written out to be run.

docs/instrumenting/*.md mark every block a reader would copy with `file=NAME`; tests write them into a
folder and run them, so the guides cannot drift from what works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE_RE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
FILE_RE = re.compile(r"\bfile=(\S+)")


@dataclass(frozen=True)
class Snippet:
    """One fenced block: its language, the file it names (or None) and its text."""

    language: str
    file: str | None
    text: str


def snippets(markdown: Path) -> list[Snippet]:
    """Every fenced code block of a Markdown file, in order."""
    found = []
    for match in FENCE_RE.finditer(markdown.read_text()):
        name = FILE_RE.search(match.group(2))
        found.append(Snippet(match.group(1), name.group(1) if name else None, match.group(3)))
    return found


def write_snippets(markdown: Path, folder: Path) -> dict[str, Path]:
    """Write each block that names a file into `folder`; returns {file name: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for snippet in snippets(markdown):
        if snippet.file is None:
            continue
        if snippet.file in written:
            raise ValueError(f"{markdown}: two blocks name file={snippet.file}")
        path = folder / snippet.file
        path.write_text(snippet.text)
        written[snippet.file] = path
    return written
