"""The DPO dashboard at ``{prefix}/admin/``: opt-in rates, ledger health, audit, export.

Only with ``[dpo] token``. A browser signs in with the token once (a form) and gets a
short-lived signed session cookie (``SESSION_MINUTES``), scoped to the dashboard's path,
``HttpOnly`` and ``SameSite=Strict``; scripts may send ``Authorization: Bearer <token>``
instead. Every form posts to the same origin only (checked as for decisions).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from consentgate.config import AccessLogSettings, Language
from consentgate.consent.export import Period, compute_stats
from consentgate.middleware.audit import read_findings
from consentgate.middleware.dashboard import (
    CSP,
    DEFAULT_RANGE,
    RANGES,
    TEXTS,
    ChainStatus,
    DashboardData,
    DashboardPages,
    LogStatus,
    period_labels,
)
from consentgate.middleware.endpoints import (
    NO_STORE,
    HTTPProblem,
    Route,
    accept_language,
    check_same_origin,
    dispatch,
)
from consentgate.middleware.logfiles import expired_files, file_day

if TYPE_CHECKING:
    from consentgate.middleware.endpoints import ConsentEndpoints

logger = logging.getLogger("consentgate")

#: How long a dashboard session lasts after signing in.
SESSION_MINUTES = 30
SESSION_SALT = "consentgate.dpo-session"
#: Largest form body accepted (the login form is a few hundred bytes).
MAX_FORM_BYTES = 4096
#: Without a check run yet, the dashboard checks the chain itself up to this many records
#: (about a second); larger ledgers wait for the button or ``consentgate verify``.
AUTO_VERIFY_MAX = 100_000
#: Seconds a period's statistics are reused: reading a large ledger takes seconds (about
#: 1.8 s per 200,000 records), and a DPO switching languages or checking the chain should
#: not pay that again each time.
STATS_SECONDS = 60.0
HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under it browsers send "Origin: null" with form posts, which the
    # same-origin check (CSRF) must refuse (Fetch standard, "serializing a request origin").
    "Referrer-Policy": "same-origin",
}
EMPTY_STATS: dict[str, Any] = {
    "totals": {"records": 0, "consent_ids": 0, "actions": {}},
    "services": {},
    "categories": {},
    "periods": {},
}


class AdminApp:
    """Serves the dashboard pages for ``ConsentEndpoints`` (which routes ``/admin`` here)."""

    def __init__(self, endpoints: ConsentEndpoints) -> None:
        self.endpoints = endpoints
        settings = endpoints.settings
        self.settings = settings
        self.base = settings.prefix + "/admin/"
        self.pages = DashboardPages(settings, SESSION_MINUTES)
        self.cookie_name = settings.cookie.name + "_dpo"
        keys = [k.get_secret_value() for k in settings.secret_keys]
        clock = endpoints.clock
        signer = type(
            "_SessionSigner",
            (TimestampSigner,),
            {"get_timestamp": lambda self: int(clock().timestamp())},
        )
        # itsdangerous wants keys oldest first and signs with the last one.
        self._signer: TimestampSigner = signer(list(reversed(keys)), salt=SESSION_SALT)
        self._stats: dict[tuple[str, date], tuple[float, dict[str, Any]]] = {}
        """Statistics per (period, day): when computed (loop time) and the result."""
        self.chain: ChainStatus | None = None
        """The last chain check this process ran (shown until the next one)."""
        self.flush_audit: Callable[[], Awaitable[None]] | None = None
        """Set by ``ConsentMiddleware``: adds this process's audit counts before reading."""
        self._routes: dict[str, Route] = {
            "/": ("GET, HEAD", self.dashboard),
            "/login": ("POST", self.login),
            "/logout": ("POST", self.logout),
            "/verify": ("POST", self.verify),
            "/audit/clear": ("POST", self.clear_audit),
            "/export": ("GET", self.export),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        sub_path = scope["path"][len(self.base) - 1 :]
        if self.settings.dpo.token is None:
            response = HTTPProblem(
                404, "the DPO dashboard is off; set [dpo] token in the settings"
            ).response()
        elif scope["path"] == self.base[:-1]:
            query = scope.get("query_string", b"").decode("latin-1")
            response = RedirectResponse(self.base + ("?" + query if query else ""), 308)
        else:
            response = await dispatch(self._routes.get(sub_path), request, "dashboard page")
        await response(scope, receive, send)

    # -- authentication ---------------------------------------------------------------------

    def _token_digest(self) -> str:
        token = self.settings.dpo.token
        assert token is not None
        # The session names the token it was opened with (not the token itself), so a new
        # token ends every session opened with the old one.
        # Keyed with the signing key, so the cookie gives no handle for guessing the token.
        key = self.settings.secret_keys[0].get_secret_value().encode()
        return hmac.new(key, token.get_secret_value().encode(), hashlib.sha256).hexdigest()

    def _bearer_ok(self, request: Request) -> bool:
        token = self.settings.dpo.token
        assert token is not None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)

    def _session(self, request: Request) -> str | None:
        """Return ``ok``, ``expired`` or ``None`` (no or a forged session cookie)."""
        value = request.cookies.get(self.cookie_name)
        if not value:
            return None
        try:
            payload = self._signer.unsign(value, max_age=SESSION_MINUTES * 60)
        except SignatureExpired:
            return "expired"
        except BadSignature:
            return None
        if hmac.compare_digest(payload, self._token_digest().encode()):
            return "ok"
        return None

    def _authorized(self, request: Request) -> bool:
        return self._bearer_ok(request) or self._session(request) == "ok"

    def _cookie(self, request: Request, value: str, max_age: int) -> str:
        parts = [
            f"{self.cookie_name}={value}",
            f"Max-Age={max_age}",
            f"Path={self.base}",
            "HttpOnly",
            "SameSite=Strict",
        ]
        secure = self.settings.cookie.secure
        if secure is True or (secure == "auto" and request.url.scheme == "https"):
            parts.append("Secure")
        return "; ".join(parts)

    def _language(self, request: Request, form: dict[str, str] | None = None) -> Language:
        wanted = (form or {}).get("lang") or request.query_params.get("lang")
        if wanted in TEXTS:
            return wanted
        for tag in accept_language(request.headers.get("accept-language", "")):
            if tag in TEXTS:
                return tag
        return self.settings.default_language

    def _login_page(self, request: Request, error: str | None, status: int = 401) -> Response:
        page = self.pages.login(self._language(request), error=error)
        headers = {**HEADERS, "WWW-Authenticate": 'Bearer realm="consentgate"'}
        return HTMLResponse(page, status_code=status, headers=headers)

    # -- pages ------------------------------------------------------------------------------

    async def dashboard(self, request: Request) -> Response:
        """The dashboard, or the login form (401) without a valid token or session."""
        if not self._authorized(request):
            expired = self._session(request) == "expired"
            return self._login_page(request, "expired" if expired else None)
        range_key = request.query_params.get("range", DEFAULT_RANGE)
        if range_key not in RANGES:
            raise HTTPProblem(
                422, f"range {range_key!r} is not one of {', '.join(map(repr, RANGES))}", "range"
            )
        language = self._language(request)
        data = await self._data(range_key)
        return HTMLResponse(self.pages.dashboard(language, data), headers=HEADERS)

    async def login(self, request: Request) -> Response:
        """Check the token from the login form; open a session and go to the dashboard."""
        check_same_origin(request)
        form = await _form(request)
        language = self._language(request, form)
        token = self.settings.dpo.token
        assert token is not None
        given = form.get("token", "").strip().encode()
        if not hmac.compare_digest(given, token.get_secret_value().encode()):
            logger.warning("DPO dashboard: sign-in with a wrong token")
            page = self.pages.login(language, error="wrong_token")
            return HTMLResponse(page, status_code=401, headers=HEADERS)
        session = self._signer.sign(self._token_digest()).decode()
        response = RedirectResponse(
            self.base + "?" + urlencode({"lang": language}), status_code=303, headers=HEADERS
        )
        response.headers.append("Set-Cookie", self._cookie(request, session, SESSION_MINUTES * 60))
        return response

    async def logout(self, request: Request) -> Response:
        """End the session."""
        check_same_origin(request)
        form = await _form(request)
        response = RedirectResponse(
            self.base + "?" + urlencode({"lang": self._language(request, form)}),
            status_code=303,
            headers=HEADERS,
        )
        response.headers.append("Set-Cookie", self._cookie(request, "", 0))
        return response

    def _require(self, request: Request) -> None:
        if not self._authorized(request):
            raise HTTPProblem(
                401,
                "sign in to the dashboard or send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="consentgate"'},
            )

    async def verify(self, request: Request) -> Response:
        """Check every chain now, then show the dashboard with the result."""
        check_same_origin(request)
        self._require(request)
        form = await _form(request)
        await self._verify()
        query = {"lang": self._language(request, form), "range": form.get("range", "")}
        if query["range"] not in RANGES:
            query["range"] = DEFAULT_RANGE
        return RedirectResponse(
            self.base + "?" + urlencode(query) + "#chain", status_code=303, headers=HEADERS
        )

    async def clear_audit(self, request: Request) -> Response:
        """Forget the tracker-audit findings (after the settings were fixed)."""
        check_same_origin(request)
        self._require(request)
        form = await _form(request)
        try:
            await self.endpoints.store.clear_audit()
        except Exception as exc:
            raise HTTPProblem(503, f"the consent ledger is unavailable: {exc}") from exc
        query = {"lang": self._language(request, form)}
        return RedirectResponse(
            self.base + "?" + urlencode(query) + "#audit", status_code=303, headers=HEADERS
        )

    async def export(self, request: Request) -> Response:
        """Download the records (the export form; empty dates mean no bound)."""
        self._require(request)
        kept = [(k, v) for k, v in request.query_params.multi_items() if v]
        scope = {**request.scope, "query_string": urlencode(kept).encode()}
        return await self.endpoints.export_records(Request(scope, request.receive))

    # -- data -------------------------------------------------------------------------------

    async def _verify(self) -> None:
        store = self.endpoints.store
        try:
            report = await store.verify()
        except Exception as exc:
            raise HTTPProblem(503, f"the consent ledger is unavailable: {exc}") from exc
        self.chain = ChainStatus(
            ok=report.ok,
            checked=report.checked,
            at=self.endpoints.clock().strftime("%Y-%m-%d %H:%M UTC"),
            first_problem=report.problems[0] if report.problems else None,
        )

    async def _statistics(
        self,
        range_key: str,
        today: date,
        since: datetime | None,
        by: Period,
        categories: Mapping[str, str],
    ) -> dict[str, Any]:
        """Return the period's statistics, reusing ones computed in the last minute."""
        now = asyncio.get_running_loop().time()
        key = (range_key, today)
        cached = self._stats.get(key)
        if cached is not None and now - cached[0] < STATS_SECONDS:
            return cached[1]
        stats = await compute_stats(self.endpoints.store, since=since, by=by, categories=categories)
        stats["computed_at"] = self.endpoints.clock().strftime("%Y-%m-%d %H:%M UTC")
        self._stats = {k: v for k, v in self._stats.items() if now - v[0] < STATS_SECONDS}
        self._stats[key] = (now, stats)
        return stats

    async def _data(self, range_key: str) -> DashboardData:
        endpoints = self.endpoints
        store = endpoints.store
        if self.flush_audit is not None:
            await self.flush_audit()
        days, by = RANGES[range_key]
        now = endpoints.clock()
        today = now.date()
        since = None
        if days is not None:
            first = today - timedelta(days=days - 1)
            since = datetime(first.year, first.month, first.day, tzinfo=now.tzinfo)
        health = await endpoints.ledger.health()
        store_ok = health["store"] == "ok"
        stats, findings = EMPTY_STATS, []
        if store_ok:
            categories = {s.id: s.category for s in self.settings.services.values()}
            try:
                stats = await self._statistics(range_key, today, since, by, categories)
                findings = await read_findings(store, self.settings)
                if self.chain is None and await store.count() <= AUTO_VERIFY_MAX:
                    await self._verify()
            except Exception as exc:  # the store went away meanwhile
                logger.warning("dashboard: ledger unavailable: %s", exc)
                store_ok = False
        labels = period_labels(
            stats, None if since is None else since.date().isoformat(), today.isoformat(), by
        )
        spool = health["spool"]
        return DashboardData(
            range=range_key,
            stats=stats,
            labels=labels,
            store_ok=store_ok,
            spool_depth=spool["depth"],
            spool_oldest=spool["oldest"],
            chain=self.chain,
            logs=await asyncio.to_thread(log_status, self.settings.access_log, today),
            findings=findings,
        )


def log_status(settings: AccessLogSettings, today: date) -> LogStatus:
    """Return how old the oldest access-log file is and how many are past retention."""
    directory = settings.directory
    if directory is None:
        return LogStatus(enabled=False, retention_days=settings.retention_days)
    try:
        days = [d for d in map(file_day, os.listdir(directory)) if d is not None]
        overdue = len(expired_files(directory, settings.retention_days, today))
    except OSError:
        days, overdue = [], 0
    return LogStatus(
        enabled=True,
        retention_days=settings.retention_days,
        files=len(days),
        oldest=min(days).isoformat() if days else None,
        overdue=overdue,
    )


async def _form(request: Request) -> dict[str, str]:
    """Return an ``application/x-www-form-urlencoded`` body's fields (first value each)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPProblem(413, f"form is larger than {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPProblem(400, f"form body is not valid: {exc}") from None
    return {name: values[0] for name, values in fields.items()}
