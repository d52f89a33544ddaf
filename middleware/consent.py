"""``ConsentMiddleware``: the visitor's consent, enforced on every response."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentgate.config import Language, Settings
from consentgate.consent import ConsentState, CookieCodec, Ledger, Store, open_store
from consentgate.middleware.accesslog import AccessLogMiddleware
from consentgate.middleware.audit import FLUSH_SECONDS as AUDIT_FLUSH_SECONDS
from consentgate.middleware.audit import TrackerAudit
from consentgate.middleware.client import ClientAddressMiddleware
from consentgate.middleware.endpoints import ConsentEndpoints
from consentgate.middleware.htmlfilter import Gate, ResponseFilter, strip_variant
from consentgate.middleware.logfiles import AccessLog
from consentgate.widgets import BannerAssets

logger = logging.getLogger("consentgate")

#: Request headers the middleware reads.
_WANTED = frozenset(
    (
        b"cookie",
        b"host",
        b"dnt",
        b"sec-gpc",
        b"accept-encoding",
        b"if-none-match",
        b"accept-language",
    )
)
#: Parsed Cookie headers remembered (a visitor sends the same header on every request).
JAR_CACHE_SIZE = 4096
# Content codings the HTML filter can decode; others are removed from Accept-Encoding.
_DECODABLE = frozenset((b"gzip", b"x-gzip", b"deflate", b"identity", b"*"))


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ConsentMiddleware:
    """Pure ASGI middleware that makes the visitor's consent true on every response.

    - puts a ``ConsentState`` in ``scope["consentgate"]`` (``.allows(service_id)``), with
      ``DNT``/``Sec-GPC`` objections applied as configured;
    - answers the consent API and serves the banner files under ``settings.prefix``;
    - rewrites HTML responses as they stream so no tag of a service without consent reaches
      the browser, drops the app's ``Set-Cookie`` headers for such services, expires their
      cookies, and adds the consent-aware Content-Security-Policy if configured.

    Before any of that, the visitor's address is found (trusted proxies) and masked in
    ``scope["client"]`` (``ClientAddressMiddleware``), and with ``[access_log] directory``
    set every request gets a line in the access log (``AccessLogMiddleware``).

    Reading the state needs no store access; only a decision writes to the ledger named by
    ``settings.store_url`` (or the ``store`` given).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        store: Store | None = None,
        clock: Callable[[], datetime] = _utcnow,
        assets: BannerAssets | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.codec = CookieCodec(settings, clock=lambda: clock().timestamp())
        self._owns_store = store is None
        self.store = store if store is not None else open_store(settings.store_url)
        self.ledger = Ledger(self.store, settings.ledger, clock=clock)
        self.assets = assets if assets is not None else BannerAssets()
        self.audit = TrackerAudit()
        self._audit_task: asyncio.Task[None] | None = None
        self.endpoints = ConsentEndpoints(
            settings=settings,
            codec=self.codec,
            store=self.store,
            clock=clock,
            assets=self.assets,
            ledger=self.ledger,
        )
        self.endpoints.admin.flush_audit = self.flush_audit
        versions = "".join(a.version for a in self.assets.files.values())
        self.gate = Gate(
            settings,
            assets_html=self.assets.head_html(settings.prefix),
            asset_version=versions,
            audit=self.audit,
        )
        self._blocking = settings.blocking.enabled
        self._prefix = settings.prefix
        self._prefix_slash = settings.prefix + "/"
        self._cookie_name = settings.cookie.name
        self._languages = settings.languages
        self._objections = bool(self.gate.signals.dnt or self.gate.signals.gpc)
        self._jars: dict[bytes, tuple[str | None, tuple[str, ...]]] = {}
        self.access_log: AccessLog | None = None
        handler: ASGIApp = self._consent
        if settings.access_log.directory is not None:
            self.access_log = AccessLog(
                settings.access_log,
                clock=time.time if clock is _utcnow else lambda: clock().timestamp(),
            )
            handler = AccessLogMiddleware(handler, log=self.access_log)
            self.endpoints.access_log = self.access_log
        self._handler = handler
        # Called, not stacked: one ASGI hop less on every request.
        self.client_address = ClientAddressMiddleware(handler, settings=settings.ip)

    def __repr__(self) -> str:
        return f"ConsentMiddleware(app={self.app!r}, settings={self.settings!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket"):
            scope = self.client_address.rewrite(scope)
            if not self.ledger.started:
                # No lifespan from this server: spool replay and purge start with traffic.
                self._start_background()
        elif kind == "lifespan":
            # Started now, not at the app's startup message: an app refusing the lifespan
            # still gets its spool replayed and its records purged without traffic.
            self._start_background()
            receive = self._lifespan_receive(receive)
        await self._handler(scope, receive, send)

    def _start_background(self) -> None:
        self.ledger.start()
        loop = asyncio.get_running_loop()
        task = self._audit_task
        if task is None or task.done() or task.get_loop() is not loop:
            self._audit_task = loop.create_task(self._flush_audit_now_and_then())

    async def _flush_audit_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(AUDIT_FLUSH_SECONDS)
            await self.flush_audit()

    async def flush_audit(self) -> None:
        """Add this process's tracker-audit counts to the store (logged, never raised)."""
        try:
            # Shielded: a timeout stops the waiting, not a write already under way.
            await asyncio.wait_for(
                asyncio.shield(self.audit.flush(self.store)), self.ledger.timeout
            )
        except (Exception, TimeoutError) as exc:  # the counts wait for the next flush
            logger.warning("tracker audit not stored yet (will retry): %s", exc)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        ledger = self.ledger
        store = self.store if self._owns_store else None

        async def lifespan_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                task, self._audit_task = self._audit_task, None
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await self.flush_audit()
                await ledger.stop()
                if store is not None:  # opened from store_url: ours to close
                    await store.close()
            return message

        return lifespan_receive

    async def _consent(self, scope: Scope, receive: Receive, send: Send) -> None:
        # WebSocket handlers may need to check consent too, so they get the state as well;
        # lifespan and anything else passes straight through.
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        cookies: list[bytes] = []
        host = b""
        dnt = gpc = False
        accept_encoding = if_none_match = languages = None
        for name, value in scope["headers"]:
            if name not in _WANTED:
                continue
            if name == b"cookie":
                cookies.append(value)
            elif name == b"host":
                host = value
            elif name == b"dnt":
                dnt = value.strip() == b"1"
            elif name == b"sec-gpc":
                gpc = value.strip() == b"1"
            elif name == b"accept-encoding":
                accept_encoding = value
            elif name == b"if-none-match":
                if_none_match = value
            else:
                languages = value
        if cookies:
            consent_cookie, cookie_names = self._jar(cookies)
            state = self.codec.decode(consent_cookie)
        else:
            cookie_names = ()
            state = self.codec.undecided
        if (dnt or gpc) and self._objections:
            objected = self.gate.signals.objected(dnt, gpc)
            if objected:
                state = dataclasses.replace(state, objected=objected)
        scope["consentgate"] = state
        path: str = scope["path"]
        if kind == "http" and (path == self._prefix or path.startswith(self._prefix_slash)):
            await self.endpoints(scope, receive, send)
            return
        if kind != "http" or not self._blocking or scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        if accept_encoding is not None or if_none_match is not None:
            language = self.gate.language(languages)
            scope = self._request_headers(scope, state, language, accept_encoding, if_none_match)
        extensions = scope.get("extensions")
        if extensions and "http.response.pathsend" in extensions:
            # A file sent by path would bypass the rewrite; make the app send its bytes.
            scope = {**scope, "extensions": {**extensions}}
            del scope["extensions"]["http.response.pathsend"]
        filter_ = ResponseFilter(self.gate, send, state, host, path, languages, cookie_names)
        await self.app(scope, receive, filter_.send)

    def _jar(self, headers: list[bytes]) -> tuple[str | None, tuple[str, ...]]:
        """Return the consent cookie's value and every cookie name (cached per header)."""
        raw = headers[0] if len(headers) == 1 else b"; ".join(headers)
        parsed = self._jars.get(raw)
        if parsed is None:
            jar = cookie_parser(raw.decode("latin-1"))
            parsed = (jar.get(self._cookie_name), tuple(jar))
            if len(self._jars) >= JAR_CACHE_SIZE:
                self._jars.clear()
            self._jars[raw] = parsed
        return parsed

    def _request_headers(
        self,
        scope: Scope,
        state: ConsentState,
        language: Language,
        accept_encoding: bytes | None,
        if_none_match: bytes | None,
    ) -> Scope:
        """Drop codings the filter cannot decode; map variant ETags back to the app's."""
        token = (
            self.gate.variant(state.allowed & self.gate.optional, language)
            if if_none_match is not None
            else b""
        )
        headers = []
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                codings = [c for c in value.split(b",") if c.split(b";")[0].strip() in _DECODABLE]
                value = b",".join(codings).strip()
                if not value:
                    continue
            elif name == b"if-none-match":
                value = strip_variant(value, token)
                if not value:
                    continue
            headers.append((name, value))
        return {**scope, "headers": headers}

    def read_state(self, scope: Scope) -> ConsentState:
        """Return the consent state the request's cookie proves (signals not applied)."""
        cookies = [value for name, value in scope["headers"] if name == b"cookie"]
        if not cookies:
            return self.codec.undecided
        return self.codec.decode(self._jar(cookies)[0])
