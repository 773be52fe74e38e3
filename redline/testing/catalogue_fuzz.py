"""Generated catalogue documents, and the one property every one of them must have.

The property: `redline generate`'s pipeline, run in memory (load -> validate -> render, no promtool), on a
catalogue in which one file is replaced by a generated document, either renders cleanly or raises one
CatalogueError (or the promtool-test renderer's FixtureError) whose message is one line naming the file,
the entry and the field; never another exception, and within a time bound.
tests/unit/test_catalogue_fuzz.py runs a few hundred documents, bench/catalogue_fuzz.py ten thousand.

The documents (hypothesis strategies) are structurally varied: the real files with one to four mutations
(fields dropped, added, retyped, copied from elsewhere, entries duplicated or moved between files, odd
unicode, template and Markdown snippets in strings, huge, tiny and non-finite numbers, nested junk),
random YAML trees over the catalogue's field names, and the real text with bytes inserted, deleted or
replaced (invalid UTF-8, YAML syntax, anchors).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from redline.generate.load import CatalogueError, load_catalogue
from redline.generate.render import render_all
from redline.generate.render.promtool_tests import FixtureError
from redline.generate.validate import validate
from redline.paths import THRESHOLDS

FILES = sorted(path.name for path in THRESHOLDS.glob("*.yml"))
REAL_BYTES = {name: (THRESHOLDS / name).read_bytes() for name in FILES}
REAL_DATA = {name: yaml.safe_load(REAL_BYTES[name]) for name in FILES}
TIME_BOUND = 5.0  # seconds per document, the whole pipeline


def _field_names(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(str(key))
            _field_names(value, found)
    elif isinstance(node, list):
        for item in node:
            _field_names(item, found)
    return found


FIELD_NAMES = sorted(set().union(*(_field_names(data, set()) for data in REAL_DATA.values())))
ODD_STRINGS = [
    "", " ", "0s", "5m", "99999999999999999999w", "1e400", "-1", "NaN", "true", "null", "~",
    "{{ $value }}", "{% if x %}", "<script>alert(1)</script>", "[x](javascript:alert(1))",
    "<javascript:alert(1)>", "[r]: data:text/html,x", "`", "```", "\\", "'", '"', "\x00", "\x1b[31m",
    "\u202e\u0645\u0631\u062d\u0628\u0627", "e\u0301\U0001f600", "\ufeff", "a\nb\n", "x" * 5000,
    "up", "vector(1)", "rate(nope_total[5m])", 'sum by (a) (b{c="d"}[1m])', '{__name__=~".+"}', "{window}",
    "{le}", "level:metric:op", "Camel", "lower-case", "seconds", "ratio", ">", "<=", "critical", "histogram",
]  # fmt: skip
ODD_NUMBERS = [0, -1, 1, 0.5, -0.0, 1e-300, 1e300, 10**30, -(10**30), float("inf"), -float("inf")]
ODD_NUMBERS.append(float("nan"))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(ODD_NUMBERS),
    st.text(max_size=20),
    st.sampled_from(ODD_STRINGS),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10), st.integers(-3, 3), st.booleans())
junk = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)


class _Dumper(yaml.SafeDumper):
    """No anchors for shared objects: the documents test other things than safe_yaml's alias check."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(data: Any) -> bytes:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120).encode()


def _slots(node: Any, slots: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in the tree, depth first."""
    if isinstance(node, dict):
        for key in list(node):
            slots.append((node, key))
            _slots(node[key], slots)
    elif isinstance(node, list):
        for index in range(len(node)):
            slots.append((node, index))
            _slots(node[index], slots)
    return slots


MUTATIONS = ("drop", "retype", "scalar", "add", "copy", "duplicate", "foreign", "edit-string", "number")


def _mutate(draw: st.DrawFn, data: Any, name: str) -> None:
    slots = _slots(data, [])
    if not slots:
        return
    container, key = slots[draw(st.integers(0, len(slots) - 1))]
    value = container[key]
    kind = draw(st.sampled_from(MUTATIONS))
    if kind == "drop":
        del container[key]
    elif kind == "retype":
        container[key] = draw(junk)
    elif kind == "scalar":
        container[key] = draw(scalars)
    elif kind == "add":
        if isinstance(container, dict):
            container[draw(keys)] = draw(junk)
        else:
            container.insert(key, draw(junk))
    elif kind == "copy":  # a value from elsewhere in the file (a signal as a metric name, ...)
        source, source_key = slots[draw(st.integers(0, len(slots) - 1))]
        container[key] = copy.deepcopy(source[source_key])
    elif kind == "duplicate" and isinstance(container, list):
        container.append(copy.deepcopy(value))
    elif kind == "foreign":  # an entry of another file: a metric or an alert of the wrong system
        other = REAL_DATA[draw(st.sampled_from([f for f in FILES if f != name]))]
        section = draw(st.sampled_from(["metrics", "thresholds", "slos"]))
        if other.get(section) and isinstance(data, dict):
            entries = data.setdefault(section, [])
            if isinstance(entries, list):
                entries.append(copy.deepcopy(draw(st.sampled_from(other[section]))))
    elif kind == "edit-string" and isinstance(value, str):
        at = draw(st.integers(0, len(value)))
        container[key] = value[:at] + draw(st.sampled_from(ODD_STRINGS) | st.text(max_size=5)) + value[at:]
    elif kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        container[key] = draw(st.sampled_from(ODD_NUMBERS))
    else:
        container[key] = draw(scalars)


@st.composite
def mutated_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real file with one to four structural mutations."""
    name = draw(st.sampled_from(FILES))
    data = copy.deepcopy(REAL_DATA[name])
    for _ in range(draw(st.integers(1, 4))):
        _mutate(draw, data, name)
    return name, dump(data)


@st.composite
def random_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """A random tree, often with the file's own `system:` so it gets past the first checks."""
    name = draw(st.sampled_from(FILES))
    data = draw(junk)
    if isinstance(data, dict) and draw(st.booleans()):
        data = {"system": name.removesuffix(".yml"), **data}
    return name, dump(data)


BYTE_SNIPPETS = [b"\xff", b"\xc3", b"\x00", b"\t", b"&a ", b"*a", b": :", b"- ", b"[", b"{", b"'", b'"']
BYTE_SNIPPETS.append(b"\n ")


@st.composite
def text_edited_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """The real text with bytes inserted, deleted or replaced."""
    name = draw(st.sampled_from(FILES))
    text = bytearray(REAL_BYTES[name])
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text[at:at] = draw(st.sampled_from(BYTE_SNIPPETS) | st.binary(max_size=4))
        else:
            del text[at : at + draw(st.integers(1, 40))]
    return name, bytes(text)


documents = st.one_of(mutated_file(), mutated_file(), mutated_file(), random_file(), text_edited_file())


@dataclass
class Outcome:
    kind: str  # rendered | refused
    message: str
    seconds: float


def run_pipeline(directory: Path, name: str, content: bytes) -> Outcome:
    """Load, validate and render the catalogue in `directory` with `name` replaced by `content`.

    `directory` holds a copy of thresholds/ (catalogue_copy); the file is put back afterwards. Returns
    the outcome. Any exception but CatalogueError (or FixtureError: the renderer's refusal of a test
    fixture, naming file, entry and field the same way) propagates; an error message that is not one
    line naming file, entry and field raises AssertionError.
    """
    path = directory / name
    path.write_bytes(content)
    started = time.monotonic()
    try:
        catalogue = load_catalogue(directory)
        validate(catalogue)
        render_all(catalogue)
        outcome = Outcome("rendered", "", time.monotonic() - started)
    except (CatalogueError, FixtureError) as err:
        outcome = Outcome("refused", str(err), time.monotonic() - started)
        message = str(err)
        assert "\n" not in message and "\r" not in message, f"more than one line: {message!r}"
        assert err.file and err.entry and err.field and err.problem, f"missing file/entry/field: {message!r}"
        assert message.startswith(f"{err.file}: entry "), message
        assert len(message) <= 600, f"{len(message)} characters: {message[:200]!r}..."
    finally:
        path.write_bytes(REAL_BYTES[name])
    assert outcome.seconds < TIME_BOUND, f"{outcome.seconds:.2f}s for {name}"
    return outcome


def catalogue_copy(directory: Path) -> Path:
    """A copy of the real catalogue files under directory (the fuzzed pipeline's working copy)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (directory / name).write_bytes(REAL_BYTES[name])
    return directory
