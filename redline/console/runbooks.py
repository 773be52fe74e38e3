"""The runbooks (docs/runbooks/*.md, rendered by `redline generate`) as HTML with an anchor per alert.

markdown-it-py renders them (CommonMark, raw HTML escaped, only safe link schemes); every `## AlertName`
heading gets the id `conventions.runbook_anchor(AlertName)`, the anchor each alert's `runbook_url` ends
with. `section` gives one alert's part, shown inline on its console page.
"""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt
from mdit_py_plugins.anchors import anchors_plugin

from redline.generate.conventions import runbook_anchor

RUNBOOKS = Path("docs") / "runbooks"
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
_MARKDOWN.use(anchors_plugin, min_level=1, max_level=2, slug_func=runbook_anchor)


def render(markdown: str) -> str:
    """HTML of Markdown text (raw HTML in it is shown as text, never run)."""
    return _MARKDOWN.render(markdown)


class Runbooks:
    """The runbook pages under a checkout (or any folder laid out like docs/runbooks)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def systems(self) -> list[str]:
        """The systems with a runbook page."""
        return sorted(p.stem for p in self.folder.glob("*.md") if p.stem != "README")

    def page(self, system: str) -> str | None:
        """The HTML of one system's runbook (with the index's links rewritten), or None."""
        if system not in self.systems():
            return None
        return render((self.folder / f"{system}.md").read_text())

    def section(self, system: str, alert_name: str) -> str | None:
        """The HTML of one alert's section of its system's runbook, or None."""
        if system not in self.systems():
            return None
        text = (self.folder / f"{system}.md").read_text()
        heading = f"## {alert_name}\n"
        if heading not in text:
            return None
        body = text.split(heading, 1)[1].split("\n## ", 1)[0]
        return render(body)
