"""Read a YAML file that a person wrote, within bounds: size, encoding, no aliases, limited nesting.

The catalogue and the inventory are edited by hand and may come from anywhere. A YAML alias can expand a
few hundred bytes into gigabytes (the "billion laughs" bomb) and hang the reader; a huge or deeply nested
file only wastes time. So every file is checked before it is built into Python objects: at most
`max_bytes`, valid UTF-8, no anchors or aliases (nothing in redline's files needs them), at most
`max_depth` levels of nesting. libyaml's C parser does the reading when PyYAML has it. Every refusal is a
YamlInputError whose message names the file and, where there is one, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # 1 MiB: the largest catalogue file is ~20 KB
MAX_DEPTH = 32

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_START = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_END = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class YamlInputError(ValueError):
    """A YAML file refused before or while parsing: `problem` is one line; str() adds the file name."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name, self.problem = name, problem


def load_file(path: Path, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The parsed content of a YAML file, or YamlInputError. Reads at most max_bytes + 1 bytes."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as err:
        raise YamlInputError(path.name, f"cannot read: {err.strerror or err}") from None
    if len(data) > max_bytes:
        raise YamlInputError(path.name, f"larger than {max_bytes} bytes; refusing to read it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise YamlInputError(
            path.name, f"line {line}: not UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None
    return load_text(text, path.name, max_depth=max_depth)


def load_text(text: str, name: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse YAML text already in memory with the same checks (name is used in messages)."""
    try:
        _check_events(text, name, max_depth)
        return yaml.load(text, Loader=_Loader)  # a safe loader (no object tags), checked above
    except yaml.YAMLError as err:
        raise YamlInputError(name, _yaml_problem(err, max_depth)) from None


def _yaml_problem(err: yaml.YAMLError, max_depth: int) -> str:
    """One line: where and what, without PyYAML's '<unicode string>' and line breaks."""
    if not isinstance(err, yaml.MarkedYAMLError) or err.problem_mark is None:
        return f"not valid YAML: {' '.join(str(err).split())}"
    where = f"line {err.problem_mark.line + 1}, column {err.problem_mark.column + 1}"
    problem = " ".join(str(err.problem).split())
    if "maximum nesting depth" in problem:  # libyaml's own limit, met while it scans ahead of our check
        return f"{where}: nested deeper than {max_depth} levels"
    context = f" ({' '.join(str(err.context).split())})" if err.context else ""
    return f"{where}: not valid YAML: {problem}{context}"


def _check_events(text: str, name: str, max_depth: int) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise YamlInputError(
                name,
                f"line {_line(event)}: YAML anchors and aliases are not allowed (write the value out)",
            )
        if isinstance(event, _START):
            depth += 1
            if depth > max_depth:
                raise YamlInputError(name, f"line {_line(event)}: nested deeper than {max_depth} levels")
        elif isinstance(event, _END):
            depth -= 1


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 0
