"""The console's routes: a server-rendered Starlette application over redline/console/views.py.

GET  /                       alerts now, grouped as Alertmanager groups them (pending ones from Prometheus)
GET  /alert?LABEL=VALUE...   one alert: its signal, runbook section, silence and acknowledge forms
GET  /silences               silences; POST /silences creates one, POST /silences/ID/expire expires one
POST /ack                    acknowledge an alert's episode (stored in the ledger)
GET  /history?days=N         the ledger: pages, tickets, flapping, time to resolve, noisiest alerts
GET  /systems/SYSTEM         every documented number of a system against its current value
GET  /runbooks/SYSTEM.md     a runbook as HTML, one anchor per alert (the alerts' runbook_url)
GET  /d/UID?viewPanel=ID     where a dashboard link lands when there is no Grafana
Every POST needs the form's CSRF token; every page the stack's credentials (redline/console/security.py).
Whatever waits on Prometheus, Alertmanager or the ledger runs in Starlette's thread pool (plain `def`
endpoints, run_in_threadpool in the forms): one slow upstream never holds up the other requests.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from redline.console.runbooks import Runbooks
from redline.console.security import Authenticator, AuthMiddleware, Csrf
from redline.console.upstream import UpstreamError
from redline.console.views import Console, silence_body
from redline.generate.conventions import COMPLIANCE_WINDOW
from redline.generate.humanize import humanize_duration
from redline.receivers.ledger import Action, Ledger

HERE = Path(__file__).parent
MATCHER_RE = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"?([^"]*)"?\s*$')


class FormError(ValueError):
    """A form that cannot be acted on; shown to the user with status 400."""


def build_app(console: Console, runbooks: Runbooks, authenticator: Authenticator, csrf: Csrf) -> Starlette:
    """The console application."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["timestamp"] = lambda s: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(s))
    templates.env.filters["duration"] = lambda s: humanize_duration(float(s))

    def page(request: Request, name: str, status: int = 200, **context: object) -> Response:
        user = request.scope.get("state", {}).get("user", "anonymous")
        context |= {
            "user": user,
            "csrf": csrf.token(user),
            "systems": [s.id for s in console.catalogue.systems],
        }
        return templates.TemplateResponse(request, name, context, status_code=status)

    async def checked_form(request: Request) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        own = f"{request.url.scheme}://{request.url.netloc}"
        if not csrf.valid(request.state.user, form.get("csrf"), request.headers.get("origin"), own):
            raise FormError("this form is stale or did not come from the console; reload the page")
        return form

    def now(request: Request) -> Response:
        try:
            groups, error = console.groups(), None
        except UpstreamError as err:
            groups, error = [], str(err)
        unreachable = console.alertmanagers.unreachable
        return page(request, "now.html", groups=groups, error=error, unreachable=unreachable)

    def alert(request: Request) -> Response:
        labels = dict(request.query_params)
        try:
            shown = console.find(labels)
            chart = console.chart(labels)
        except UpstreamError as err:
            return page(request, "error.html", 502, error=str(err))
        system, name = labels.get("system", ""), labels.get("alertname", "")
        runbook = runbooks.section(system, name)
        back = urlencode(sorted(labels.items()))
        return page(
            request, "alert.html", labels=labels, alert=shown, chart=chart, runbook=runbook, back=back
        )

    def silences(request: Request) -> Response:
        try:
            items, error = console.alertmanagers.silences(), None
        except UpstreamError as err:
            items, error = [], str(err)
        return page(request, "silences.html", silences=items, error=error)

    async def create_silence(request: Request) -> Response:
        form = await checked_form(request)
        matchers = _matchers(form.get("matchers", ""))
        hours = _hours(form.get("hours", ""))
        comment = form.get("comment", "").strip()
        if not comment:
            raise FormError("say why in the comment: it is what the next person reads")
        now_s = time.time()
        body = silence_body(matchers, hours, request.state.user, comment, now_s)
        silence_id = await run_in_threadpool(console.alertmanagers.create_silence, body)
        await run_in_threadpool(
            _record, console, "silence", form, request.state.user, f"{silence_id}: {comment}", now_s
        )
        return RedirectResponse(f"/silences#{silence_id}", status_code=303)

    async def expire_silence(request: Request) -> Response:
        form = await checked_form(request)
        silence_id = request.path_params["silence_id"]
        await run_in_threadpool(console.alertmanagers.expire_silence, silence_id)
        await run_in_threadpool(_record, console, "expire", form, request.state.user, silence_id, time.time())
        return RedirectResponse("/silences", status_code=303)

    async def acknowledge(request: Request) -> Response:
        form = await checked_form(request)
        if not form.get("fingerprint"):
            raise FormError("only an alert Alertmanager knows (a firing one) can be acknowledged")
        comment = form.get("comment", "")
        await run_in_threadpool(_record, console, "ack", form, request.state.user, comment, time.time())
        return RedirectResponse(f"/alert?{form.get('back', '')}", status_code=303)

    def history(request: Request) -> Response:
        days = (
            int(request.query_params.get("days", "7"))
            if request.query_params.get("days", "7").isdigit()
            else 7
        )
        return page(request, "history.html", **console.history(max(1, min(days, 366))))

    def system(request: Request) -> Response:
        system_id = request.path_params["system"]
        if system_id not in {s.id for s in console.catalogue.systems}:
            return page(request, "error.html", 404, error=f"no system {system_id!r}")
        return page(
            request,
            "system.html",
            system=console.catalogue.system(system_id),
            rows=console.system_rows(system_id),
            no_compliance=console.no_compliance(),
            compliance_window=COMPLIANCE_WINDOW,
        )

    async def runbook(request: Request) -> Response:
        html = runbooks.page(request.path_params["system"])
        if html is None:
            return page(request, "error.html", 404, error=f"no runbook {request.path_params['system']!r}")
        return page(request, "runbook.html", system=request.path_params["system"], body=html)

    async def runbook_index(request: Request) -> Response:
        return page(request, "runbooks.html", names=runbooks.systems())

    async def dashboard(request: Request) -> Response:
        panel = request.query_params.get("viewPanel", "")
        system_id, entry = console.panel_entry(
            request.path_params["uid"], int(panel) if panel.isdigit() else None
        )
        if not system_id:
            return RedirectResponse("/", status_code=302)
        return RedirectResponse(
            f"/systems/{system_id}" + (f"#entry-{entry}" if entry else ""), status_code=302
        )

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("OK\n")

    async def form_error(request: Request, exc: Exception) -> Response:
        return page(request, "error.html", 400, error=str(exc))

    async def upstream_error(request: Request, exc: Exception) -> Response:
        return page(request, "error.html", 502, error=str(exc))

    routes = [
        Route("/", now),
        Route("/alert", alert),
        Route("/silences", silences),
        Route("/silences", create_silence, methods=["POST"]),
        Route("/silences/{silence_id}/expire", expire_silence, methods=["POST"]),
        Route("/ack", acknowledge, methods=["POST"]),
        Route("/history", history),
        Route("/systems/{system}", system),
        Route("/runbooks/", runbook_index),
        Route("/runbooks/{system}.md", runbook),
        Route("/d/{uid}", dashboard),
        Route("/-/healthy", healthy),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={FormError: form_error, UpstreamError: upstream_error})
    app.add_middleware(AuthMiddleware, authenticator=authenticator)
    return app


def _matchers(text: str) -> list[tuple[str, str]]:
    matchers = []
    for line in filter(str.strip, text.splitlines()):
        match = MATCHER_RE.match(line)
        if not match:
            raise FormError(f'not a matcher like name="value": {line.strip()!r}')
        matchers.append((match.group(1), match.group(2)))
    if not matchers:
        raise FormError("a silence needs at least one matcher")
    return matchers


def _hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        raise FormError(f"duration: {text!r} is not a number of hours") from None
    if not 0 < hours <= 24 * 30:
        raise FormError("duration: between a minute and 30 days, in hours")
    return hours


def _record(console: Console, kind: str, form: dict[str, str], author: str, detail: str, at: float) -> None:
    starts_at = float(form["starts_at"]) if form.get("starts_at") else None
    ledger = Ledger(console.ledger_url)
    try:
        ledger.act(Action(kind, form.get("fingerprint", ""), starts_at, author, detail, at))
    finally:
        ledger.close()
