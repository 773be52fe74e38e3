"""Render redline/pg_roles.py into compose's PostgreSQL init script (postgres/20-roles.sh)."""

from __future__ import annotations

from redline import pg_roles
from redline.generate.model import Catalogue

POSTGRES_INIT = "postgres/20-roles.sh"


def render_postgres_init(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: the services' roles and grants for docker-compose.yml's postgres (the same SQL as
    `redline up` applies natively)."""
    return {POSTGRES_INIT: pg_roles.render_compose_init(pg_roles.PIPELINE_DATABASE)}
