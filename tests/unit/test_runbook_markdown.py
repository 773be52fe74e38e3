"""Runbook text is written into docs/runbooks/ as safe Markdown (issue 15: `<script>` and `javascript:`
links in runbook text were written as they were): raw HTML is escaped, other link schemes are refused."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from redline.generate import cli
from redline.generate.load import load_catalogue
from redline.generate.markdown import code_fence, code_span, inline, link_text, unsafe_link
from redline.generate.render.runbooks import render_runbooks
from redline.generate.validate import validate
from redline.testing.catalogue import changed_catalogue, entry

RENDERER = MarkdownIt("commonmark", {"html": True})


def html_in(markdown: str) -> list[str]:
    """Every raw HTML fragment a CommonMark renderer would pass through, and every link target."""

    def walk(token: Token) -> list[str]:
        found = [token.content] if token.type in ("html_inline", "html_block") else []
        found += [f"href={token.attrGet('href')}"] if token.type == "link_open" else []
        for child in token.children or ():
            found += walk(child)
        return found

    return [item for token in RENDERER.parse(markdown) for item in walk(token)]


def test_script_tags_in_runbook_text_render_as_text(tmp_path) -> None:
    def hostile(data: dict) -> None:
        runbook = entry(data, "cycle-time")["runbook"]
        runbook["meaning"] = "Cycles are slow <script>alert(1)</script> & <img src=x onerror=alert(1)>"
        runbook["causes"] = ["Agents stuck: see `tmux-orc status <agent>` and <!-- a comment -->"]
        runbook["actions"] = ["Restart\n<div>\n# not a heading", "Read [the guide](https://example.org/g)"]
        runbook["escalation"] = "Call </p><a href='javascript:alert(1)'>x</a>"

    catalogue = load_catalogue(changed_catalogue(tmp_path, "tmux.yml", hostile))
    validate(catalogue)
    page = render_runbooks(catalogue)["docs/runbooks/tmux.md"]
    body = page.split("\n", 1)[1]  # the first line is the generated-file header, an HTML comment
    assert [item for item in html_in(body) if not item.startswith("href=")] == []  # no raw HTML at all
    links = sorted({item for item in html_in(body) if item.startswith("href=https://example")})
    assert links == ["href=https://example.org/g"]
    assert "**What it means**: Cycles are slow &lt;script>alert(1)&lt;/script> & &lt;img src=x" in body
    assert "- Agents stuck: see `tmux-orc status <agent>` and &lt;!-- a comment -->" in body  # code kept
    assert "1. Restart &lt;div> # not a heading" in body  # one paragraph: no HTML block, no heading
    assert "**Escalation**: Call &lt;/p>&lt;a href='javascript:alert(1)'>x&lt;/a>" in body
    assert "<script>" not in body.replace("`", "")


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("[click](javascript:alert(1))", "javascript:alert(1)"),
        ("[click](JaVa&#x73;cript:alert(1))", "JaVascript:alert(1)"),  # entity-encoded scheme
        ("[click](%6Aavascript:alert(1))", "%6Aavascript:alert(1)"),  # percent-encoded scheme
        ("[r]: javascript:alert(1)", "javascript:alert(1)"),  # a reference definition
        ("<javascript:alert(1)>", "javascript:alert(1)"),  # an autolink
        ("![x](data:text/html;base64,PHNjcmlwdD4=)", "data:text/html;base64,PHNjcmlwdD4="),
        ("[x](<vbscript:msgbox(1)> 'title')", "vbscript:msgbox(1)"),
        ("[mail](mailto:oncall@example.org)", "mailto:oncall@example.org"),
        ("[ok](https://example.org) [rel](../operations.md#reload) [anchor](#tmuxmonitordown)", None),
        ("plain text: javascript: is only a word here", None),
    ],
)
def test_unsafe_link(text: str, target: str | None) -> None:
    assert unsafe_link(text) == target


def test_javascript_link_in_a_runbook_is_refused_in_one_line(tmp_path, capsys) -> None:
    def link(data: dict) -> None:
        entry(data, "cycle-time")["runbook"]["actions"][1] = "Open [the dashboard](javascript:alert(1))"

    out = tmp_path / "out"
    catalogue = changed_catalogue(tmp_path, "tmux.yml", link)
    assert cli.main(["generate", "--catalogue", str(catalogue), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "redline generate: tmux.yml: entry 'cycle-time': field 'runbook.actions[1]': link to "
        "'javascript:alert(1)' not allowed: runbook text links only to http(s) or relative"
    )
    assert not out.exists()


def test_code_spans_fences_and_link_texts_cannot_be_closed_early() -> None:
    assert code_span("plain") == "`plain`"
    assert code_span("a `b` c") == "``a `b` c``"
    assert code_span("`edge`") == "`` `edge` ``"
    assert code_fence("up\n```\n<script>", "promql") == ["````promql", "up", "```", "<script>", "````"]
    assert link_text("x](javascript:alert(1)) [y") == r"x\](javascript:alert(1)) \[y"
    assert inline("Memory usage < 80%, rollback <10 minutes") == "Memory usage < 80%, rollback <10 minutes"
