"""Load thresholds/*.yml into the model: bounded reading, schema validation, one-line errors.

Each file is read with redline.safe_yaml (size, encoding, no aliases, nesting), validated against
redline.generate.schema and converted into redline.generate.model objects. The first problem found raises
CatalogueError naming the file, the entry and the field. No binary is needed: PromQL is parsed later by
redline.generate.validate.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from redline import inventory, safe_yaml, topology
from redline.generate import model, schema
from redline.generate.model import clip
from redline.paths import THRESHOLDS

SETTINGS_FILE = "redline.yml"  # the file whose `settings:` every renderer reads
LIST_SECTIONS = ("thresholds", "slos", "metrics")
# Range errors that need their meaning, not just the bound, by field name.
RANGE_MEANINGS = {"objective": "must be a ratio between 0 and 1 (0.999 for 99.9%)"}


class CatalogueError(Exception):
    """Bad catalogue input; the message names the file, the entry and the field."""

    def __init__(self, file: str, entry: str, field_name: str, problem: str) -> None:
        entry, field_name, problem = clip(entry, 80), clip(field_name, 120), clip(problem, 300)
        self.file, self.entry, self.field, self.problem = file, entry, field_name, problem
        super().__init__(f"{file}: entry {entry!r}: field {field_name!r}: {problem}")


def load_catalogue(directory: Path | None = None, inventory_path: Path | None = None) -> model.Catalogue:
    """Load and check every `*.yml` of the catalogue folder (default: the repository's thresholds/) and the
    inventory (default inventory.yml of the checkout; none: the demo), whose links the alerts carry."""
    directory = Path(directory) if directory is not None else THRESHOLDS
    paths = sorted(directory.glob("*.yml"))
    if not paths:
        raise CatalogueError(str(directory), "(catalogue)", "(files)", "no *.yml files found")
    files: dict[str, schema.SystemFile] = {}
    for path in paths:
        document = read_file(path)
        if path.stem != document.system:
            problem = f"is {document.system!r} but the file is named {path.name}"
            raise CatalogueError(path.name, "(file)", "system", problem)
        if (document.settings is not None) != (path.name == SETTINGS_FILE):
            problem = f"only {SETTINGS_FILE} has settings" if document.settings else "missing (required here)"
            raise CatalogueError(path.name, "(file)", "settings", problem)
        files[document.system] = document
    if "redline" not in files:
        raise CatalogueError(str(directory), "(catalogue)", SETTINGS_FILE, "missing: it holds the settings")
    settings = files["redline"].settings
    assert settings is not None
    systems = [system(f"{sid}.yml", files[sid]) for sid in topology.SYSTEMS if sid in files]
    try:
        services = inventory.load(inventory_path)
    except inventory.InventoryError as err:
        raise CatalogueError(err.file, "(inventory)", err.field, err.problem) from None
    return model.Catalogue(systems, _settings(settings, services.links), directory, services)


def read_file(path: Path) -> schema.SystemFile:
    """One catalogue file, read within bounds and validated against the schema."""
    try:
        data = safe_yaml.load_file(path)
    except safe_yaml.YamlInputError as err:
        raise CatalogueError(path.name, "(file)", "(yaml)", err.problem) from None
    try:
        return schema.SystemFile.model_validate(data)
    except ValidationError as err:
        raise validation_error(path.name, data, err) from None


# ----- one-line errors from pydantic's ----------------------------------------------------------------


def validation_error(file: str, data: Any, err: ValidationError) -> CatalogueError:
    """The first error of a ValidationError as CatalogueError(file, entry, field, problem)."""
    first = err.errors(include_url=False)[0]
    loc = list(first["loc"])
    if first["type"] == "catalogue":
        loc += [int(part) if part.isdigit() else part for part in first["ctx"]["field"].split(".")]
    entry, rest = _entry_of(data, loc)
    return CatalogueError(file, entry, _field_text(rest) or "(entry)", _problem(first, loc))


def _entry_of(data: Any, loc: list[Any]) -> tuple[str, list[Any]]:
    """The entry a location is in (its id, else section[index]) and the location inside it."""
    if len(loc) >= 2 and loc[0] in LIST_SECTIONS and isinstance(loc[1], int):
        items = data.get(loc[0]) if isinstance(data, dict) else None
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        position = f"{loc[0]}[{loc[1]}]"
        if loc[0] == "metrics":
            name = item.get("name") if isinstance(item, dict) else None
            return (f"{position} {name}" if isinstance(name, str) else position), loc[2:]
        entry_id = item.get("id") if isinstance(item, dict) else None
        return (entry_id if isinstance(entry_id, str) else position), loc[2:]
    if loc and loc[0] == "settings":
        return "settings", loc[1:]
    return "(file)", loc


def _field_text(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problem(error: Any, loc: list[Any]) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "catalogue":
        return str(ctx["problem"])
    if kind == "missing":
        return "missing (required)"
    if kind == "extra_forbidden":
        return f"unknown field; allowed: {', '.join(_allowed_fields(loc[:-1]))}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}, got {value!r}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in schema.PATTERN_MEANINGS:
        meaning = schema.PATTERN_MEANINGS[ctx["pattern"]]
        return f"{value!r} {meaning}" if meaning.startswith("is ") else f"{meaning}, got {value!r}"
    if kind in ("string_type", "string_too_short", "string_pattern_mismatch"):
        return f"must be a non-empty string, got {value!r}"
    if kind in ("float_type", "float_parsing", "int_type", "finite_number"):
        return f"must be a number, got {value!r}"
    if kind in ("greater_than", "less_than", "greater_than_equal", "less_than_equal"):
        bound = {k: v for k, v in ctx.items() if k in ("gt", "lt", "ge", "le")}
        return f"{RANGE_MEANINGS.get(str(loc[-1]), f'is out of range {bound}')}, got {value!r}"
    if kind == "list_type":
        return f"must be a list, got {type(value).__name__}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping, got {type(value).__name__}"
    if kind == "too_short":
        return "needs at least one item"
    if kind == "bool_type":
        return f"must be true or false, got {value!r}"
    return str(error["msg"])


def _allowed_fields(loc: Sequence[Any]) -> list[str]:
    """The field names of the schema model at a location (for 'unknown field' messages)."""
    current: Any = schema.SystemFile
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        fields = {info.alias or name: info for name, info in current.model_fields.items()}
        current = _model_in(fields[part].annotation) if part in fields else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(info.alias or name for name, info in current.model_fields.items())
    return []


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside list[...] / ... | None / Annotated[...], or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# ----- conversion into the model ----------------------------------------------------------------------


def system(file: str, document: schema.SystemFile) -> model.System:
    """The model of one validated file (threshold levels become one Threshold each)."""
    sid = document.system
    return model.System(
        id=sid,
        name=document.name,
        source=document.source,
        file=file,
        alert_prefix=document.alert_prefix,
        metrics=[_metric(sid, m) for m in document.metrics],
        thresholds=[level for entry in document.thresholds for level in _threshold(file, document, entry)],
        slos=[_slo(file, document, entry) for entry in document.slos],
        test_targets=tuple(tuple(sorted(t.items())) for t in topology.test_targets(sid)),
        external_metrics=tuple(document.external_metrics),
    )


def _metric(system_id: str, metric: schema.Metric) -> model.MetricSpec:
    return model.MetricSpec(
        name=metric.name,
        type=metric.type,
        help=metric.help,
        labels=tuple(metric.labels),
        buckets=tuple(metric.buckets or ()),
        system=system_id,
        origin=metric.origin,
    )


def _runbook(runbook: schema.Runbook) -> model.Runbook:
    return model.Runbook(runbook.meaning, tuple(runbook.causes), tuple(runbook.actions), runbook.escalation)


def _fixture(fixture: schema.Fixture | None, le: float | None = None) -> model.Fixture | None:
    if fixture is None:
        return None
    bound = model.format_le(le) if le is not None else None
    series = tuple(
        model.FixtureSeries(s.series.replace("{le}", bound) if bound else s.series, s.type, s.scale, s.offset)
        for s in fixture.series
    )
    return model.Fixture(series=series, keeps=tuple(fixture.keeps), kind=fixture.kind)


def _threshold(file: str, document: schema.SystemFile, entry: schema.Threshold) -> list[model.Threshold]:
    # (severity, value, for, quote) of each level; an entry without levels is one level
    levels = [(lv.severity, lv.value, lv.for_, lv.quote) for lv in entry.levels or ()] or [
        (severity, value, None, None) for severity, value in entry.level_values()
    ]
    runbook, fixture = _runbook(entry.runbook), _fixture(entry.test)
    return [
        model.Threshold(
            id=entry.id,
            system=document.system,
            alert_name=entry.alert,
            summary=entry.summary,
            measures=entry.measures,
            signal=entry.signal.strip(),
            record=entry.record,
            metric=entry.metric,
            operator=entry.operator,
            value=value,
            target=entry.target,
            unit=entry.unit,
            for_=level_for or entry.for_,
            severity=severity,
            quote=(quote or entry.quote).strip(),
            source=entry.source or document.source,
            runbook=runbook,
            fixture=fixture,
            file=file,
            extra_labels=tuple(sorted(entry.labels.items())),
            description=entry.description.strip() if entry.description else None,
            entry_values=tuple(level[1] for level in levels),
            standard_name=entry.standard_name,
        )
        for severity, value, level_for, quote in levels
    ]


def _slo(file: str, document: schema.SystemFile, entry: schema.Slo) -> model.Slo:
    error_ratio = entry.error_ratio
    if entry.le is not None:
        error_ratio = error_ratio.replace("{le}", model.format_le(entry.le))
    return model.Slo(
        id=entry.id,
        system=document.system,
        alert_name=entry.alert,
        name=entry.name,
        summary=entry.summary,
        objective=entry.objective,
        period=entry.period,
        error_ratio=error_ratio.strip(),
        metric=entry.metric,
        quote=entry.quote.strip(),
        source=entry.source or document.source,
        runbook=_runbook(entry.runbook),
        fixture=_fixture(entry.test, entry.le),
        file=file,
        le=entry.le,
    )


def _settings(settings: schema.Settings, links: inventory.Links) -> model.Settings:
    console = f"http://127.0.0.1:{topology.endpoint('console').port}"  # serves /d/<uid> and /runbooks
    return model.Settings(
        grafana_url=(links.grafana_url or console).rstrip("/"),
        runbook_base_url=(links.runbook_base_url or f"{console}/runbooks").rstrip("/"),
        burn_rates=tuple(
            model.BurnRate(t.severity, t.factor, t.long_window, t.short_window, t.for_)
            for t in settings.burn_rates
        ),
        test_interval=settings.test_interval,
        test_settle=settings.test_settle,
    )
