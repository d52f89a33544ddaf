"""``ConsentMiddleware``: reads the consent cookie once per request and serves the consent API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from consentgate.config import Settings
from consentgate.consent import ConsentState, CookieCodec, Store, open_store
from consentgate.middleware.endpoints import ConsentEndpoints


class ConsentMiddleware:
    """Pure ASGI middleware that makes the visitor's consent known to the app.

    Puts a ``ConsentState`` in ``scope["consentgate"]`` (``.allows(service_id)``,
    ``.consent_id``, ``.decided``) and answers the consent endpoints under
    ``settings.prefix``. Reading the state needs no store access; only a decision writes
    to the ledger named by ``settings.store_url`` (or the ``store`` given).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        store: Store | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.settings = settings
        self.codec = CookieCodec(settings, clock=lambda: clock().timestamp())
        self.store = store if store is not None else open_store(settings.store_url)
        self.endpoints = ConsentEndpoints(
            settings=settings, codec=self.codec, store=self.store, clock=clock
        )
        self._prefix = settings.prefix
        self._prefix_slash = settings.prefix + "/"
        self._cookie_name = settings.cookie.name

    def __repr__(self) -> str:
        return f"ConsentMiddleware(app={self.app!r}, settings={self.settings!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # WebSocket handlers may need to check consent too, so they get the state as well;
        # lifespan and anything else passes straight through.
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope["consentgate"] = self.read_state(scope)
        path: str = scope["path"]
        if scope["type"] == "http" and (
            path == self._prefix or path.startswith(self._prefix_slash)
        ):
            await self.endpoints(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def read_state(self, scope: Scope) -> ConsentState:
        """Return the consent state the request's cookie proves."""
        cookie_headers = [value for name, value in scope["headers"] if name == b"cookie"]
        if not cookie_headers:
            return self.codec.undecided
        cookies = cookie_parser(b"; ".join(cookie_headers).decode("latin-1"))
        return self.codec.decode(cookies.get(self._cookie_name))
