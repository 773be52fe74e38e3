"""Who may use the console, and proof that a POST comes from its own page.

Authentication is the stack's: HTTP basic auth against the bcrypt hashes of a web-config file (the same
format as Prometheus', read by redline.telemetry.web). Every state-changing request (a POST) must carry the
CSRF token of its form: an HMAC of the user under a secret only the console knows, compared in constant
time, and, when the browser sends one, an Origin equal to the console's own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from redline.telemetry.web import BasicAuth, load_web_config

OPEN_PATHS = ("/-/healthy",)  # answered without credentials (readiness checks)


class Authenticator:
    """The console's users (from a web-config file), or anyone when none is configured."""

    def __init__(self, web_config: str | None) -> None:
        users = load_web_config(web_config).users if web_config else {}
        self._auth = BasicAuth(users) if users else None

    @property
    def required(self) -> bool:
        return self._auth is not None

    def user(self, header: str | None) -> str | None:
        """The authenticated user's name; "anonymous" when no users are configured."""
        return self._auth.user(header) if self._auth is not None else "anonymous"


class AuthMiddleware:
    """ASGI middleware: 401 with a basic-auth challenge for every request without valid credentials."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        user = self.authenticator.user(Headers(scope=scope).get("authorization"))
        if user is None:
            response: Response = PlainTextResponse(
                "Unauthorized\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="redline console"'},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)


class Csrf:
    """Per-user CSRF tokens under a secret that lives as long as the console process."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def token(self, user: str) -> str:
        return hmac.new(self._secret, user.encode(), hashlib.sha256).hexdigest()

    def valid(self, user: str, token: str | None, origin: str | None, own_origin: str) -> bool:
        """The form's token is this user's, and the request comes from the console's own page."""
        if origin is not None and origin != own_origin:
            return False
        return token is not None and hmac.compare_digest(token, self.token(user))
