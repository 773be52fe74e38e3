"""What a PromQL expression reads and which labels it keeps, without promtool (the unit tier has no binary).

A small tokenizer, enough for the catalogue's checks: an identifier is a metric name unless it is a
keyword (`and`, `by`, `offset`, ...), a function or an aggregation (an identifier followed by `(`, or an
aggregation followed by `by`/`without`), or a label name (inside `{...}`, or in the label list after `by`,
`without`, `on`, `ignoring`, `group_left`, `group_right`). Strings, numbers and durations are skipped, and
so is what stands in `[...]` (ranges, subquery steps). A selector without a name before its braces names
its metrics with `__name__`: `{__name__="up"}` reads up, `{__name__=~"up|pg_up"}` reads both; any other
regular expression over `__name__` is refused (the checks could not know what it reads). `groupings`
lists the label sets an expression's aggregations keep, and `calls` its functions, with the same
tokenizer. Whether the expression parses at all is promtool's job (redline.generate.validate.check_promql).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

KEYWORDS = frozenset({
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right",
    "atan2", "start", "end",
})  # fmt: skip
AGGREGATIONS = frozenset({
    "sum", "avg", "count", "min", "max", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "limitk", "limit_ratio",
})  # fmt: skip
# Aggregations that return their input series with all labels (they select, they do not group).
SELECTING = frozenset({"topk", "bottomk", "limitk", "limit_ratio"})
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
NUMBER_RE = re.compile(r"(?:0[xX][0-9a-fA-F]+|[0-9.][0-9a-zA-Z_.]*(?:(?<=[eE])[+-][0-9]+)?)")
MATCH_OP_RE = re.compile(r"\s*(=~|!~|!=|=)\s*")
STRING_QUOTES = "\"'`"


class PromqlNameError(ValueError):
    """The metric names of an expression cannot be told (a regular expression over __name__)."""


def metric_names(query: str) -> list[str]:
    """The metric names the expression reads, in order of appearance, each once."""
    names: dict[str, None] = {}
    for word, end in _words(query, names):
        if _is_metric(query, word, end):
            names[word] = None
    return list(names)


@dataclass(frozen=True)
class Grouping:
    """One aggregation that drops labels: `keyword` is by, without, or None for none (it keeps no label)."""

    operator: str
    keyword: str | None
    labels: tuple[str, ...]

    def keeps(self, label: str) -> bool:
        if self.keyword == "without":
            return label not in self.labels
        return label in self.labels

    def __str__(self) -> str:
        if self.keyword is None:
            return f"{self.operator}(...) without by (...)"
        return f"{self.operator} {self.keyword} ({', '.join(self.labels)})"


def groupings(query: str) -> list[Grouping]:
    """Every label-dropping aggregation of the expression, in order, with the label list it keeps or
    drops, whether written before the argument (`sum by (a) (x)`) or after it (`sum(x) by (a)`)."""
    found = []
    for word, end in _words(query):
        lower = word.lower()
        if lower not in AGGREGATIONS or lower in SELECTING:
            continue
        keyword, clause_at = _next_word(query, end).lower(), end
        if _next_char(query, end) == "(":
            after = _closing(query, _skip_space(query, end))
            keyword, clause_at = _next_word(query, after).lower(), after
        elif keyword not in ("by", "without"):
            continue  # a metric called like an aggregation
        if keyword in ("by", "without"):
            start = _skip_space(query, clause_at) + len(keyword)
            found.append(Grouping(word, keyword, _label_list(query, start)))
        else:
            found.append(Grouping(word, None, ()))
    return found


def calls(query: str) -> list[str]:
    """The functions the expression calls (an identifier followed by `(`), in order."""
    return [
        word
        for word, end in _words(query)
        if _next_char(query, end) == "(" and word.lower() not in KEYWORDS | LABEL_LISTS
    ]


def _words(query: str, names: dict[str, None] | None = None) -> Iterator[tuple[str, int]]:
    """(identifier, end position) outside strings, selectors, ranges, comments and label lists; what a
    selector's __name__ matchers read goes into `names` as the scan passes it."""
    names = {} if names is None else names
    position, length = 0, len(query)
    while position < length:
        char = query[position]
        if char.isspace():
            position += 1
        elif char == "#":
            end = query.find("\n", position)
            position = length if end < 0 else end + 1
        elif char in STRING_QUOTES:
            position = _string_end(query, position)
        elif char == "{":
            position = _selector(query, position, names)
        elif char == "[":
            end = query.find("]", position)
            position = length if end < 0 else end + 1
        elif char.isdigit() or (char == "." and query[position + 1 : position + 2].isdigit()):
            match = NUMBER_RE.match(query, position)
            position = match.end() if match else position + 1
        elif match := NAME_RE.match(query, position):
            word, position = match.group(), match.end()
            yield word, position
            if word.lower() in LABEL_LISTS:
                position = _skip_label_list(query, position)
        else:
            position += 1  # operators, parentheses, commas, @


def _closing(query: str, position: int) -> int:
    """The position after the parenthesis that closes the one at position (the end when unclosed)."""
    depth, length = 0, len(query)
    while position < length:
        char = query[position]
        if char in STRING_QUOTES:
            position = _string_end(query, position)
            continue
        if char == "{":
            position = _selector(query, position, {})
            continue
        if char == "[":
            end = query.find("]", position)
            position = length if end < 0 else end + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return position + 1
        position += 1
    return length


def _label_list(query: str, position: int) -> tuple[str, ...]:
    """The names in the `(a, b)` at or after position."""
    start = _skip_space(query, position)
    if start >= len(query) or query[start] != "(":
        return ()
    end = query.find(")", start)
    body = query[start + 1 : len(query) if end < 0 else end]
    return tuple(label.strip() for label in body.split(",") if label.strip())


def _is_metric(query: str, word: str, end: int) -> bool:
    """Whether the identifier ending at `end` names a metric (not a keyword, function or aggregation)."""
    lower = word.lower()
    if lower in LABEL_LISTS or lower in KEYWORDS or lower in ("inf", "nan"):
        return False
    if _next_char(query, end) == "(":
        return False  # a function or an aggregation
    return not (lower in AGGREGATIONS and _next_word(query, end).lower() in ("by", "without"))


def _selector(query: str, position: int, names: dict[str, None]) -> int:
    """Skip `{...}` after position (at '{'); record what its __name__ matchers (or a quoted name) read."""
    position += 1
    length = len(query)
    while position < length:
        while position < length and (query[position].isspace() or query[position] == ","):
            position += 1
        if position >= length or query[position] == "}":
            return position + 1
        if query[position] in STRING_QUOTES:  # Prometheus 3: {"metric.name"} or {"label"="value"}
            end = _string_end(query, position)
            text = _unquote(query[position:end])
            operator = MATCH_OP_RE.match(query, end)
            if operator is None:
                names[text] = None
                position = end
                continue
            label, position = text, end
        else:
            match = LABEL_RE.match(query, position)
            if match is None:
                position += 1  # not a selector promtool would take; it reports it
                continue
            label, position = match.group(), match.end()
            operator = MATCH_OP_RE.match(query, position)
            if operator is None:
                continue
        position = operator.end()
        if position >= length or query[position] not in STRING_QUOTES:
            continue
        end = _string_end(query, position)
        value = _unquote(query[position:end])
        position = end
        if label == "__name__":
            _name_matcher(operator.group(1), value, names)
    return length


def _name_matcher(operator: str, value: str, names: dict[str, None]) -> None:
    if operator == "=":
        names[value] = None
    elif operator == "=~":
        alternatives = value.split("|")
        if not all(NAME_RE.fullmatch(name) for name in alternatives):
            raise PromqlNameError(
                f"__name__=~{value!r} is not a list of metric names; write them out as name_a|name_b"
            )
        names.update(dict.fromkeys(alternatives))
    # != and !~ exclude names: they read no particular metric


def _string_end(query: str, position: int) -> int:
    """The position after the string literal that starts at position (to the end when unterminated)."""
    quote = query[position]
    index = position + 1
    while index < len(query):
        if query[index] == "\\" and quote != "`":
            index += 2
            continue
        if query[index] == quote:
            return index + 1
        index += 1
    return len(query)


def _unquote(literal: str) -> str:
    body = literal[1:-1] if len(literal) >= 2 and literal[-1] == literal[0] else literal[1:]
    if literal[:1] == "`":
        return body
    return re.sub(r"\\(.)", r"\1", body)


def _skip_label_list(query: str, position: int) -> int:
    """After by/without/on/ignoring/group_left/group_right: skip its `(label, ...)` when there is one."""
    index = _skip_space(query, position)
    if index < len(query) and query[index] == "(":
        end = query.find(")", index)
        return len(query) if end < 0 else end + 1
    return position


def _skip_space(query: str, position: int) -> int:
    while position < len(query) and query[position].isspace():
        position += 1
    return position


def _next_char(query: str, position: int) -> str:
    index = _skip_space(query, position)
    return query[index] if index < len(query) else ""


def _next_word(query: str, position: int) -> str:
    match = NAME_RE.match(query, _skip_space(query, position))
    return match.group() if match else ""
