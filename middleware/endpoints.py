"""The HTTP endpoints under the consent prefix.

For the banner: ``GET state``, ``POST decision`` and the banner files. For the visitor:
``GET history`` (their own records). For operations: ``GET health``. For the data
protection officer, only with ``[dpo] token``: ``GET dpo/export``, ``dpo/verify``,
``dpo/stats``.
"""

from __future__ import annotations

import asyncio
import gzip
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from consentgate.config import LANGUAGES, Language, Settings
from consentgate.consent import (
    Action,
    ConsentState,
    CookieCodec,
    Ledger,
    Outcome,
    RecordDraft,
    Store,
    StoreError,
    new_consent_id,
)
from consentgate.consent.export import FORMATS, compute_stats, export_text
from consentgate.consent.record import format_time
from consentgate.middleware.ipmask import mask_ip
from consentgate.middleware.logfiles import AccessLog
from consentgate.middleware.policy import CookiePolicy, Signals
from consentgate.middleware.useragent import reduce_user_agent
from consentgate.widgets import (
    BannerAssets,
    Catalogue,
    Declaration,
    build_catalogues,
    render_declaration,
)

logger = logging.getLogger("consentgate")

#: A decision body is a few hundred bytes; anything far larger is not from the banner.
MAX_DECISION_BYTES = 8192
MAX_PAGE_URL_CHARS = 2048
NO_STORE = {"Cache-Control": "no-store"}
DECLARATION_FORMATS: tuple[Literal["html", "md"], ...] = ("html", "md")


class DecisionIn(BaseModel):
    """The body of ``POST decision``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    accept: Literal["all", "none"] | None = None
    services: dict[str, StrictBool] | None = None
    page: Annotated[str, StringConstraints(max_length=MAX_PAGE_URL_CHARS)] | None = None
    language: Language | None = None
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


class HTTPProblem(Exception):
    """A request the endpoints refuse; becomes a JSON error response."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}

    def response(self, headers: dict[str, str] | None = None) -> Response:
        body: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        return JSONResponse(
            body, status_code=self.status, headers={**NO_STORE, **self.headers, **(headers or {})}
        )


class ConsentEndpoints:
    """An ASGI app serving the consent API; mounted by ``ConsentMiddleware`` at its prefix."""

    def __init__(
        self,
        *,
        settings: Settings,
        codec: CookieCodec,
        store: Store,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        assets: BannerAssets | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.store = store
        self.ledger = ledger if ledger is not None else Ledger(store, settings.ledger, clock=clock)
        self.access_log: AccessLog | None = None
        """Set by ``ConsentMiddleware``: its counters show in the health endpoint."""
        self.clock = clock
        self.assets = assets if assets is not None else BannerAssets()
        self.cookie_policy = CookiePolicy(settings)
        self.signals = Signals(settings)
        self.catalogues: dict[Language, Catalogue] = build_catalogues(settings)
        self._banners_stored: set[str] = set()
        self._routes: dict[str, Route] = {
            "/state": ("GET, HEAD", self.state),
            "/decision": ("POST", self.decision),
            "/history": ("GET", self.history),
            "/health": ("GET", self.health),
            "/dpo/export": ("GET", self.dpo_export),
            "/dpo/verify": ("GET", self.dpo_verify),
            "/dpo/stats": ("GET", self.dpo_stats),
            "/declaration": ("GET, HEAD", self.declaration),
        }
        self._declarations: dict[tuple[str, str], Declaration] = {}
        from consentgate.middleware.admin import AdminApp  # it imports this module

        self.admin = AdminApp(self)
        for name in self.assets.files:
            self._routes["/" + name] = ("GET, HEAD", self.asset)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        sub_path = scope["path"][len(self.settings.prefix) :]
        if sub_path == "/admin" or sub_path.startswith("/admin/"):
            await self.admin(scope, receive, send)
            return
        response = await dispatch(self._routes.get(sub_path), request, "consent endpoint")
        await response(scope, receive, send)

    def language(self, request: Request, wanted: str | None = None) -> Language:
        """Pick the language: explicit choice, ``?lang=``, the page's, then Accept-Language.

        The banner sends its page's ``<html lang>`` as ``?page_lang=``: a page in a language
        other than the default gets a banner in that language; on a page in the default
        language, a visitor whose browser asks for another offered language gets that one.
        """
        offered = self.settings.languages
        for candidate in (wanted, request.query_params.get("lang")):
            if candidate in offered:
                return candidate
        page = request.query_params.get("page_lang", "").split("-", 1)[0].lower()
        if page in offered and page != self.settings.default_language:
            return page
        for tag in accept_language(request.headers.get("accept-language", "")):
            if tag in offered:
                return tag
        return self.settings.default_language

    async def state(self, request: Request) -> Response:
        """Return the visitor's state and the banner catalogue in their language."""
        state: ConsentState = request.scope["consentgate"]
        catalogue = self.catalogues[self.language(request)]
        headers = request.headers
        body = {
            # No consent id: every script on the page could read it (the cookie is HttpOnly).
            "decided": state.decided,
            "granted": sorted(state.granted),
            # What the browser's DNT / Sec-GPC headers keep off, so the banner can say so.
            "objected": sorted(state.objected),
            "signals": [
                name
                for name, header, services in (
                    ("DNT", "dnt", self.signals.dnt),
                    ("GPC", "sec-gpc", self.signals.gpc),
                )
                if services and headers.get(header) == "1"
            ],
            "revision": self.settings.revision,
            "decided_at": state.decided_at.isoformat() if state.decided_at else None,
            # Under an enforced CSP the banner reloads after a grant instead of switching on.
            "csp": self.settings.csp.mode,
            "language": catalogue.language,
            "languages": list(self.settings.languages),
            "fingerprint": catalogue.fingerprint,
        }
        vary = [
            "Cookie",
            "Accept-Language",
            "Accept-Encoding",
            *(v.decode() for v in self.signals.vary),
        ]
        # The catalogue (about 14 KB, most of the answer) is encoded once per language and
        # spliced in; the whole answer is gzipped when the browser takes it (to about 4 KB).
        encoded = (
            json.dumps(body, separators=(",", ":"))[:-1] + ',"catalogue":' + catalogue.content + "}"
        ).encode()
        answer = {**NO_STORE, "Vary": ", ".join(vary)}
        if "gzip" in request.headers.get("accept-encoding", ""):
            encoded = gzip.compress(encoded, compresslevel=6, mtime=0)
            answer["Content-Encoding"] = "gzip"
        return Response(encoded, media_type="application/json", headers=answer)

    async def decision(self, request: Request) -> Response:
        """Record a decision, set the consent cookie and return a receipt."""
        check_same_origin(request)
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            raise HTTPProblem(
                415, f"content type {content_type or None!r} not accepted; send application/json"
            )
        decision = _parse_decision(await _read_body(request))
        granted = self._granted(decision)
        optional = self.settings.optional_service_ids
        refused = optional - granted
        previous: ConsentState = request.scope["consentgate"]
        action = _action(previous, granted, optional)
        language = self.language(request, decision.language)
        catalogue = self.catalogues[language]
        if decision.fingerprint is not None and decision.fingerprint != catalogue.fingerprint:
            raise HTTPProblem(
                409,
                "the banner changed since it was shown; fetch state again and ask anew",
                "fingerprint",
            )
        consent_id = previous.consent_id if previous.decided and previous.consent_id else None
        browser, os_family = reduce_user_agent(request.headers.get("user-agent", ""))
        draft = RecordDraft(
            consent_id=consent_id or new_consent_id(),
            time=self.clock(),
            action=action,
            granted=tuple(sorted(granted)),
            refused=tuple(sorted(refused)),
            revision=self.settings.revision,
            fingerprint=catalogue.fingerprint,
            language=language,
            page_url=_page_url(request, decision.page),
            ip=self._masked_client(request),
            browser=browser,
            os=os_family,
        )
        outcome = await self._record(draft, catalogue)
        response = JSONResponse(_receipt(outcome), headers=NO_STORE)
        response.headers.append("Set-Cookie", self._cookie(request, draft))
        # Withdrawn or refused services lose their first-party cookies right away.
        host = request.headers.get("host", "").rsplit(":", 1)[0]
        for expired in self.cookie_policy.expiring(list(request.cookies), granted, host):
            response.headers.append("Set-Cookie", expired)
        return response

    async def asset(self, request: Request) -> Response:
        """Serve a banner file: immutable for a year when asked for by its version."""
        asset = self.assets.files[request.url.path.rsplit("/", 1)[1]]
        versioned = request.query_params.get("v") == asset.version
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable"
            if versioned
            else "public, max-age=300",
            "ETag": asset.etag,
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
        }
        if asset.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        accepts_gzip = "gzip" in request.headers.get("accept-encoding", "")
        body = asset.gzipped if accepts_gzip else asset.content
        if accepts_gzip:
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=asset.media_type, headers=headers)

    def _granted(self, decision: DecisionIn) -> frozenset[str]:
        optional = self.settings.optional_service_ids
        if (decision.accept is None) == (decision.services is None):
            raise HTTPProblem(
                422,
                'send exactly one of {"accept": "all" | "none"} or {"services": {"<id>": bool}}',
                "accept" if decision.accept is not None else None,
            )
        if decision.accept is not None:
            return optional if decision.accept == "all" else frozenset()
        assert decision.services is not None
        for service_id, allowed in decision.services.items():
            if service_id not in self.settings.services:
                raise HTTPProblem(
                    422,
                    f"unknown service {service_id!r}; "
                    f"configured: {sorted(self.settings.services)!r}",
                    f"services.{service_id}",
                )
            if not allowed and service_id in self.settings.necessary_service_ids:
                raise HTTPProblem(
                    422,
                    f"service {service_id!r} is necessary and cannot be refused",
                    f"services.{service_id}",
                )
        return frozenset(s for s, allowed in decision.services.items() if allowed) & optional

    def _masked_client(self, request: Request) -> str:
        host = request.client.host if request.client else ""
        try:
            return mask_ip(
                host,
                ipv4_prefix=self.settings.ip.ipv4_prefix,
                ipv6_prefix=self.settings.ip.ipv6_prefix,
            )
        except ValueError:
            return ""  # a Unix socket or a test client: no address to keep

    async def _record(self, draft: RecordDraft, catalogue: Catalogue) -> Outcome:
        if catalogue.fingerprint not in self._banners_stored:
            try:
                await asyncio.wait_for(
                    self.store.put_banner(catalogue.fingerprint, catalogue.content),
                    self.ledger.timeout,
                )
                self._banners_stored.add(catalogue.fingerprint)
            except (Exception, TimeoutError) as exc:
                # The texts follow from the settings' revision; stored with a later decision.
                logger.warning("banner texts not stored yet (will retry): %s", exc)
        try:
            return await self.ledger.record(draft)
        except StoreError as exc:
            # Neither store nor spool kept it: no cookie, so what the visitor sees matches
            # what was recorded.
            raise HTTPProblem(
                503, "the consent ledger is unavailable; nothing was recorded, please try again"
            ) from exc

    async def history(self, request: Request) -> Response:
        """Return the records of the consent id in the visitor's own cookie (GDPR Art. 15)."""
        state: ConsentState = request.scope["consentgate"]
        if not state.decided or not state.consent_id:
            raise HTTPProblem(404, "no valid consent cookie: there are no records of yours")
        try:
            records = await asyncio.wait_for(
                self.store.records_for(state.consent_id), self.ledger.timeout * 5
            )
        except (Exception, TimeoutError) as exc:
            logger.warning("history unavailable: %s", exc)
            raise HTTPProblem(503, "the consent ledger is unavailable; please try again") from exc
        body = {"consent_id": state.consent_id, "records": [r.to_json() for r in records]}
        return JSONResponse(body, headers=NO_STORE)

    async def health(self, request: Request) -> Response:
        """Return the state of the ledger, the spool and the access log (no visitor data).

        ``status`` is ``degraded`` while the store is unreachable or decisions wait in the
        spool; the answer is 200 either way, because decisions are still taken.
        """
        ledger = await self.ledger.health()
        degraded = ledger["store"] != "ok" or ledger["spool"]["depth"] > 0
        body: dict[str, Any] = {"status": "degraded" if degraded else "ok", **ledger}
        if self.access_log is not None:
            stats = self.access_log.stats()
            body["access_log"] = {
                "written": stats.written,
                "dropped": stats.dropped,
                "queued": stats.queued,
                "last_error": stats.last_error,
            }
        return JSONResponse(body, headers=NO_STORE)

    def _authorize(self, request: Request) -> None:
        """Let the DPO in with the configured bearer token (compared in constant time)."""
        token = self.settings.dpo.token
        if token is None:
            raise HTTPProblem(404, "the DPO endpoints are off; set [dpo] token in the settings")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise HTTPProblem(
                401,
                "a valid DPO token is required: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="consentgate"'},
            )

    def _period(self, request: Request) -> tuple[datetime | None, datetime | None]:
        return _query_time(request, "since"), _query_time(request, "until")

    async def dpo_export(self, request: Request) -> Response:
        """Stream the records as CSV (German Excel) or JSON Lines; filters as the CLI's."""
        self._authorize(request)
        return await self.export_records(request)

    async def export_records(self, request: Request) -> Response:
        """Stream the records the query asks for (the caller has checked the DPO's rights)."""
        query = request.query_params
        fmt = query.get("format", "jsonl")
        if fmt not in FORMATS:
            raise HTTPProblem(422, f"format {fmt!r} is not one of 'csv', 'jsonl'", "format")
        service = query.get("service")
        if service is not None and service not in self.settings.services:
            raise HTTPProblem(
                422,
                f"unknown service {service!r}; configured: {sorted(self.settings.services)!r}",
                "service",
            )
        since, until = self._period(request)
        await self._check_store()
        chosen = FORMATS[fmt]
        stamp = self.clock().strftime("%Y%m%d-%H%M%S")
        return StreamingResponse(
            export_text(
                self.store,
                fmt=fmt,
                since=since,
                until=until,
                consent_id=query.get("consent_id"),
                service=service,
            ),
            media_type=chosen.media_type,
            headers={
                **NO_STORE,
                "Content-Disposition": f'attachment; filename="consent-records-{stamp}'
                f'{chosen.suffix}"',
            },
        )

    async def dpo_verify(self, request: Request) -> Response:
        """Walk every chain; ``ok`` false names the first broken record."""
        self._authorize(request)
        await self._check_store()
        report = await self.store.verify()
        body = {
            "ok": report.ok,
            "checked": report.checked,
            "chains": len(report.chains),
            "first_problem": report.problems[0] if report.problems else None,
            "problems": list(report.problems[:100]),
            "problem_count": len(report.problems),
        }
        return JSONResponse(body, headers=NO_STORE)

    async def dpo_stats(self, request: Request) -> Response:
        """Decisions and opt-in rates per service and category, optionally per period."""
        self._authorize(request)
        by = request.query_params.get("by")
        if by not in (None, "day", "week", "month"):
            raise HTTPProblem(422, f"by {by!r} is not one of 'day', 'week', 'month'", "by")
        since, until = self._period(request)
        await self._check_store()
        categories = {s.id: s.category for s in self.settings.services.values()}
        stats = await compute_stats(
            self.store,
            since=since,
            until=until,
            by=by,  # type: ignore[arg-type]
            categories=categories,
        )
        return JSONResponse(stats, headers=NO_STORE)

    async def declaration(self, request: Request) -> Response:
        """Return the cookie declaration as an embeddable HTML fragment (or Markdown).

        ``?lang=de|en`` (default: as for the banner) and ``?format=html|md``. The revision
        and fingerprint are in the headers too, so a page can show which text it embeds.
        """
        query = request.query_params
        wanted = query.get("lang")
        if wanted is not None and wanted not in LANGUAGES:
            raise HTTPProblem(
                422, f"lang {wanted!r} is not one of {', '.join(map(repr, LANGUAGES))}", "lang"
            )
        fmt = query.get("format", "html")
        if fmt not in DECLARATION_FORMATS:
            raise HTTPProblem(422, f"format {fmt!r} is not one of 'html', 'md'", "format")
        language: Language = wanted if wanted is not None else self.language(request)
        declaration = self._declarations.get((language, fmt))
        if declaration is None:
            declaration = render_declaration(self.settings, language, fmt)
            self._declarations[(language, fmt)] = declaration
        etag = f'"{declaration.fingerprint[:32]}-{fmt}"'
        headers = {
            "Cache-Control": "public, max-age=300",
            "ETag": etag,
            "Content-Language": language,
            "Vary": "Accept-Language",
            "X-Consentgate-Revision": str(declaration.revision),
            "X-Consentgate-Fingerprint": declaration.fingerprint,
            "X-Content-Type-Options": "nosniff",
        }
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        media_type = "text/html" if fmt == "html" else "text/markdown"
        return Response(declaration.text, media_type=media_type, headers=headers)

    async def _check_store(self) -> None:
        try:
            await asyncio.wait_for(self.store.ping(), self.ledger.timeout)
        except (Exception, TimeoutError) as exc:
            raise HTTPProblem(503, f"the consent ledger is unavailable: {exc}") from exc

    def _cookie(self, request: Request, draft: RecordDraft) -> str:
        cookie = self.settings.cookie
        value = self.codec.encode(draft.consent_id, tuple(sorted(draft.granted)))
        parts = [
            f"{cookie.name}={value}",
            f"Max-Age={cookie.lifetime_days * 86400}",
            f"Path={cookie.path}",
            "HttpOnly",
            "SameSite=Lax",
        ]
        if cookie.domain:
            parts.append(f"Domain={cookie.domain}")
        if cookie.secure is True or (cookie.secure == "auto" and request.url.scheme == "https"):
            parts.append("Secure")
        return "; ".join(parts)


Route = tuple[str, Callable[[Request], Awaitable[Response]]]
"""The methods a path allows (``"GET, HEAD"``) and its handler."""


async def dispatch(route: Route | None, request: Request, what: str) -> Response:
    """Return the route's response: 404 without one, 405 for another method, or the
    handler's answer (an ``HTTPProblem`` it raises becomes its JSON error)."""
    if route is None:
        return HTTPProblem(404, f"no {what} at {request.url.path!r}").response()
    methods, handler = route
    if request.method not in methods.split(", "):
        return HTTPProblem(
            405, f"method {request.method} not allowed here; use {methods}"
        ).response({"Allow": methods})
    try:
        return await handler(request)
    except HTTPProblem as problem:
        return problem.response()


def _receipt(outcome: Outcome) -> dict[str, Any]:
    draft, record = outcome.draft, outcome.record
    return {
        "consent_id": draft.consent_id,
        "record_id": draft.record_id,
        "action": draft.action,
        "granted": sorted(draft.granted),
        "refused": sorted(draft.refused),
        "revision": draft.revision,
        "time": format_time(draft.time),
        "language": draft.language,
        "fingerprint": draft.fingerprint,
        # Spooled while the store was down: recorded, the hash follows when it is stored.
        "stored": record is not None,
        "hash": record.hash if record is not None else None,
    }


def _query_time(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPProblem(
            422, f"{name} {text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS", name
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _action(previous: ConsentState, granted: frozenset[str], optional: frozenset[str]) -> Action:
    # Taking back anything granted before is a withdrawal (GDPR Art. 7(3)), whatever else.
    if previous.decided and previous.granted - granted:
        return "withdraw"
    if not granted:
        return "reject-all"
    if granted == optional:
        return "accept-all"
    return "custom"


def check_same_origin(request: Request) -> None:
    """Refuse cross-site posts: the Origin must name this host (CSRF)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise HTTPProblem(403, f"cross-site request refused (Sec-Fetch-Site: {fetch_site})")
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser, or one that sends no Origin on same-origin requests
    host = _strip_default_port(request.headers.get("host", ""), request.url.scheme)
    parts = urlsplit(origin)
    if origin == "null" or _strip_default_port(parts.netloc, parts.scheme) != host:
        raise HTTPProblem(403, f"cross-site request refused: origin {origin!r} is not {host!r}")


def _strip_default_port(netloc: str, scheme: str) -> str:
    netloc = netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    return netloc.removesuffix(default) if default else netloc


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_DECISION_BYTES:
        raise HTTPProblem(413, f"body of {declared} bytes is larger than {MAX_DECISION_BYTES}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_DECISION_BYTES:
            raise HTTPProblem(413, f"body is larger than {MAX_DECISION_BYTES} bytes")
    return bytes(body)


def _parse_decision(body: bytes) -> DecisionIn:
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPProblem(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise HTTPProblem(400, f"body must be a JSON object, not {type(raw).__name__}")
    try:
        return DecisionIn.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in error["loc"])
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        if field.startswith("accept"):
            message += ' (allowed: "all" or "none")'
        raise HTTPProblem(422, f"{field}: {message}", field) from None


def _page_url(request: Request, page: str | None) -> str:
    """Return the decision's page without query string and fragment (they may hold data)."""
    candidate = page if page is not None else request.headers.get("referer", "")
    parts = urlsplit(candidate)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        if page is not None:
            raise HTTPProblem(422, f"page {page!r} is not an absolute http(s) URL", "page")
        return ""
    host = _strip_default_port(request.headers.get("host", ""), request.url.scheme)
    if page is not None and _strip_default_port(parts.netloc, parts.scheme) != host:
        raise HTTPProblem(422, f"page {page!r} is not a page of this site ({host!r})", "page")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))[:MAX_PAGE_URL_CHARS]


@lru_cache(maxsize=1024)
def accept_language(header: str) -> tuple[str, ...]:
    """Return the primary language tags of an Accept-Language header, best first."""
    weighted = []
    for index, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, index, tag.split("-", 1)[0].lower()))
    return tuple(tag for _q, _i, tag in sorted(weighted))
