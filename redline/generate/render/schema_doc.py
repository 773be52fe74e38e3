"""Render the catalogue schema (redline.generate.schema) for editors and readers.

- `thresholds/schema.json`: JSON Schema of a catalogue file; each file's first line
  (`# yaml-language-server: $schema=schema.json`) lets YAML editors validate it as it is typed.
- the schema section of `thresholds/README.md`: one table per part of a file, between the markers
  below; the rest of the README is prose kept by hand.
"""

from __future__ import annotations

import json
from typing import Any

from redline.generate import schema as s
from redline.generate.model import Catalogue
from redline.generate.render.common import header, replace_block
from redline.generate.schema import SystemFile

SCHEMA_PATH = "thresholds/schema.json"
README_PATH = "thresholds/README.md"
BEGIN = "<!-- BEGIN GENERATED schema -->"
END = "<!-- END GENERATED schema -->"
SCHEMA_SOURCE = "redline/generate/schema.py"
# How a pattern reads in the tables (schema.json keeps the patterns themselves).
PATTERN_TYPES = {
    s.DURATION_PATTERN: "duration (30s, 5m, 1h30m, 30d)",
    s.ALERT_NAME_PATTERN: "CamelCase name",
    s.ENTRY_ID_PATTERN: "id (lower-case words joined by '-')",
    s.RECORD_PATTERN: "`level:metric:operations`",
    s.LABEL_PATTERN: "label name",
    s.METRIC_PATTERN: "metric name",
    s.URL_PATTERN: "http(s) URL",
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one catalogue file."""
    schema = SystemFile.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": header("", [SCHEMA_SOURCE], change=SCHEMA_SOURCE).replace("\n", " ").strip(),
        "title": "redline thresholds catalogue file",
        **schema,
    }


def _type_text(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        return " or ".join(_type_text(p) for p in prop["anyOf"] if p.get("type") != "null")
    if "enum" in prop:
        return " \\| ".join(f"`{value}`" for value in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if prop.get("type") == "array":
        return f"list of {_type_text(prop.get('items', {}))}"
    if prop.get("type") == "object":
        return "mapping of label name to text"
    text = {"number": "number", "string": "text", "boolean": "true \\| false", "integer": "integer"}.get(
        prop.get("type", ""), "any"
    )
    if "pattern" in prop and prop["pattern"] != r"\S":
        return PATTERN_TYPES.get(prop["pattern"], f"{text} `{prop['pattern']}`")
    return text


def _table(name: str, definition: dict[str, Any]) -> list[str]:
    required = set(definition.get("required", []))
    lines = [f"### {name}", "", definition.get("description", "").strip(), ""]
    lines += ["| field | type | required | default | meaning |", "|---|---|---|---|---|"]
    for field, prop in definition.get("properties", {}).items():
        default = "" if "default" not in prop or prop["default"] in (None, [], {}) else f"`{prop['default']}`"
        lines.append(
            f"| `{field}` | {_type_text(prop)} | {'yes' if field in required else ''} | {default} | "
            f"{prop.get('description', '')} |"
        )
    return [*lines, ""]


def schema_section() -> str:
    """The README section: one table per model, the file first."""
    schema = json_schema()
    lines = [
        BEGIN,
        "",
        "Each `thresholds/<system>.yml` is one `SystemFile`; the tables are the models of",
        f"`{SCHEMA_SOURCE}` (also `thresholds/schema.json`). Unknown fields are errors; values keep",
        "their YAML type; a `ratio` is written as a fraction (0.7 for 70%).",
        "",
        *_table("SystemFile", schema),
    ]
    for name, definition in schema.get("$defs", {}).items():
        lines += _table(name, definition)
    return "\n".join([*lines, END])


def render_schema(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: thresholds/schema.json, and the README with its schema section replaced."""
    files = {SCHEMA_PATH: json.dumps(json_schema(), indent=2) + "\n"}
    readme = catalogue.directory / "README.md"
    if readme.is_file():
        files[README_PATH] = replace_block(
            readme, README_PATH, BEGIN, END, schema_section(), "schema section"
        )
    return files
