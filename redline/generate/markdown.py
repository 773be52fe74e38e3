"""Catalogue text as a safe subset of Markdown for docs/runbooks/: inline text, no raw HTML, no links but
http(s) and relative ones.

The runbook texts (meaning, causes, actions, escalation) and the other texts a runbook page shows
(summary, measures, quotes, sources, names) are written into Markdown that on-call reads rendered. So:
- `unsafe_link` finds a link or image whose target is not http(s) or relative (`javascript:`, `data:`,
  `file:`, ...; also through a reference definition or an entity-encoded scheme): the schema refuses the
  catalogue with one line naming the field;
- `inline` makes a text one paragraph (line breaks become spaces, so a text cannot start a heading, a
  list or an HTML block) and escapes every `<` that could open raw HTML or an autolink (one followed by
  a letter, `/`, `!` or `?`) as `&lt;`, outside code spans, so `<script>` shows as text. A `<` before a
  digit or a space (`< 80%`, `<0.5s`) cannot open either and stays as written;
- `code_span` and `code_fence` quote text verbatim with enough backticks that it cannot close them.
markdown-it-py (CommonMark) is the parser that finds links and proves the escaped text holds no HTML.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token

SAFE_SCHEMES = ("http", "https")
_PARSER = MarkdownIt("commonmark", {"html": True})
_PARSER.validateLink = lambda url: True  # type: ignore[method-assign]  # see every link, judge it here
_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_HTML_OPENER_RE = re.compile(r"<(?=[A-Za-z/!?])")
_BACKTICKS_RE = re.compile(r"`+")
_LINE_BREAKS_RE = re.compile(r"\s*[\r\n]\s*")
_ASCII_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def unsafe_link(text: str) -> str | None:
    """The first link or image target in the text that is neither http(s) nor relative, or None."""
    env: dict[str, Any] = {}
    tokens = _PARSER.parse(_one_paragraph(text), env)
    targets = [str(ref.get("href", "")) for ref in env.get("references", {}).values()]
    targets += [target for token in tokens for target in _targets(token)]
    for target in targets:
        # What a browser would see: percent-decoded, control characters and spaces dropped
        cleaned = re.sub(r"[\x00-\x20\x7f]", "", unquote(target))
        scheme = _SCHEME_RE.match(cleaned)
        if scheme and scheme.group(1).lower() not in SAFE_SCHEMES:
            return target
    return None


def _targets(token: Token) -> list[str]:
    found = []
    for name in ("href", "src"):
        value = token.attrGet(name)
        if value is not None:
            found.append(str(value))
    for child in token.children or ():
        found += _targets(child)
    return found


def inline(text: str) -> str:
    """The text as one paragraph of Markdown with no raw HTML (see the module docstring)."""
    text = _one_paragraph(text)
    escaped = _escape_outside_code(text)
    if _has_html(escaped):  # a construct the code-span scan reads differently: escape every opener
        escaped = _HTML_OPENER_RE.sub("&lt;", text)
    return escaped


def link_text(text: str) -> str:
    """`inline`, with brackets escaped too: text inside [...](...) cannot end it early."""
    return re.sub(r"([\[\]])", r"\\\1", inline(text))


def code_span(text: str) -> str:
    """The text as a code span: verbatim, between more backticks than any run inside it."""
    text = _one_paragraph(text)
    fence = "`" * (max((len(run) for run in _BACKTICKS_RE.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def code_fence(text: str, info: str = "") -> list[str]:
    """A fenced code block of the text (lines kept), with a fence longer than any backtick run in it."""
    longest = max((len(run) for run in _BACKTICKS_RE.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", *text.splitlines(), fence]


def _one_paragraph(text: str) -> str:
    return _LINE_BREAKS_RE.sub(" ", text.strip())


def _escape_outside_code(text: str) -> str:
    """Escape HTML openers outside CommonMark code spans and backslash escapes."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in _ASCII_PUNCTUATION:
            out.append(text[index : index + 2])
            index += 2
            continue
        if char == "`":
            run = _BACKTICKS_RE.match(text, index)
            assert run is not None
            closing = _closing_run(text, run.end(), len(run.group()))
            end = closing if closing is not None else run.end()
            out.append(text[index:end])  # a code span verbatim, or backticks that open none
            index = end
            continue
        out.append("&lt;" if _HTML_OPENER_RE.match(text, index) else char)
        index += 1
    return "".join(out)


def _closing_run(text: str, start: int, length: int) -> int | None:
    """The end of the next backtick run of exactly `length` after start, or None."""
    for run in _BACKTICKS_RE.finditer(text, start):
        if len(run.group()) == length:
            return run.end()
    return None


def _has_html(text: str) -> bool:
    return any(_html_tokens(token) for token in _PARSER.parse(text))


def _html_tokens(token: Token) -> bool:
    if token.type in ("html_inline", "html_block"):
        return True
    return any(_html_tokens(child) for child in token.children or ())
