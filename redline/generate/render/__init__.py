"""The renderer registry: each renderer maps the catalogue to {relative path: file text}.

`redline generate` writes the union of all renderers' outputs. To add an artefact, write a function
`(catalogue) -> dict[str, str]` in its own module and append it to RENDERERS. A renderer reads only the
model (redline.generate.model and the layers below it) and redline/topology.py.
"""

from __future__ import annotations

from collections.abc import Callable

from redline.generate.model import Catalogue
from redline.generate.render.alertmanager_routes import render_alertmanager_route_tests
from redline.generate.render.common import RenderError
from redline.generate.render.contract import render_contract
from redline.generate.render.dashboards import render_dashboards
from redline.generate.render.long_term import render_long_term_rules
from redline.generate.render.otlp_labels import render_otlp_labels
from redline.generate.render.postgres_init import render_postgres_init
from redline.generate.render.promtool_tests import render_promtool_tests
from redline.generate.render.rules import render_rules
from redline.generate.render.runbooks import render_runbooks
from redline.generate.render.schema_doc import render_schema
from redline.generate.render.targets import render_targets

__all__ = ["RENDERERS", "RenderError", "Renderer", "render_all"]

Renderer = Callable[[Catalogue], dict[str, str]]

RENDERERS: list[Renderer] = [
    render_rules,
    render_promtool_tests,
    render_runbooks,
    render_long_term_rules,
    render_dashboards,
    render_alertmanager_route_tests,
    render_contract,
    render_targets,
    render_otlp_labels,
    render_postgres_init,
    render_schema,
]


def render_all(catalogue: Catalogue, renderers: list[Renderer] | None = None) -> dict[str, str]:
    """Run every renderer in memory; returns {relative path: text}, sorted by path."""
    files: dict[str, str] = {}
    for renderer in RENDERERS if renderers is None else renderers:
        for path, text in renderer(catalogue).items():
            if path in files:
                raise RenderError(f"{path} is produced by two renderers (second: {renderer.__name__})")
            files[path] = text
    return dict(sorted(files.items()))
