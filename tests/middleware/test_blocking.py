"""ConsentMiddleware enforcing consent on responses, at the raw ASGI level (real chunking)."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from consentgate.config import Settings
from consentgate.consent.sqlite import SQLiteStore
from consentgate.middleware import ConsentMiddleware
from consentgate.widgets import BannerAssets

from .helpers import HOST, Message, call, leaks, make_settings

PAGE = (
    b'<!DOCTYPE html><html lang="de"><head><title>t</title>'
    b'<script async src="https://www.googletagmanager.com/gtm.js?id=GTM-1"></script>'
    b"<script>_paq.push(['trackPageView']);</script></head><body>"
    b'<img src="https://www.facebook.com/tr?id=1"><p>Hallo</p></body></html>'
)
NEEDLES = ["googletagmanager.com", "_paq", "facebook.com/tr"]


class App:
    """An inner app sending a scripted response; it records the scope it saw."""

    def __init__(self, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> None:
        self.headers = headers
        self.chunks = chunks
        self.scope: dict[str, Any] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        for index, chunk in enumerate(self.chunks):
            more = index < len(self.chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})


def html_app(
    chunks: list[bytes] | None = None, extra: list[tuple[bytes, bytes]] | None = None
) -> App:
    headers = [(b"content-type", b"text/html; charset=utf-8"), *(extra or [])]
    return App(headers, chunks if chunks is not None else [PAGE])


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "ledger.db")
    yield store
    await store.close()


def middleware(
    app: Any, settings: Settings, store: SQLiteStore, **kwargs: Any
) -> ConsentMiddleware:
    return ConsentMiddleware(app, settings=settings, store=store, **kwargs)


def http_scope(
    method: str = "GET", path: str = "/", headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "scheme": "https",
        "query_string": b"",
        "headers": [(b"host", HOST.encode()), *(headers or [])],
        "client": ("203.0.113.9", 50000),
    }


def body_of(sent: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def headers_of(sent: list[Message]) -> list[tuple[bytes, bytes]]:
    return list(sent[0]["headers"])


def header(sent: list[Message], name: bytes) -> list[bytes]:
    return [v for n, v in headers_of(sent) if n.lower() == name]


def consent_cookie(mw: ConsentMiddleware, *granted: str) -> tuple[bytes, bytes]:
    value = mw.codec.encode("c" * 22, tuple(granted))
    return (b"cookie", f"{mw.settings.cookie.name}={value}".encode())


async def test_html_is_rewritten_with_correct_headers(ledger: SQLiteStore) -> None:
    app = html_app(
        extra=[
            (b"content-length", str(len(PAGE)).encode()),
            (b"etag", b'"v1"'),
            (b"last-modified", b"Mon, 01 Jan 2024 00:00:00 GMT"),
            (b"vary", b"Accept-Encoding"),
        ]
    )
    mw = middleware(app, make_settings(), ledger)
    sent = await call(mw, http_scope())
    body = body_of(sent)
    assert leaks(body, NEEDLES) == []
    assert header(sent, b"content-length") == [str(len(body)).encode()]
    assert header(sent, b"vary") == [b"Accept-Encoding, Cookie, DNT, Sec-GPC"]
    assert header(sent, b"last-modified") == []
    (etag,) = header(sent, b"etag")
    assert etag.startswith(b'W/"v1-cg')
    # The same consent gets the same ETag; another consent another one.
    again = await call(mw, http_scope())
    assert header(again, b"etag") == [etag]
    other = await call(mw, http_scope(headers=[consent_cookie(mw, "matomo")]))
    assert header(other, b"etag") != [etag]


async def test_variant_etag_maps_back_for_the_app(ledger: SQLiteStore) -> None:
    app = html_app(extra=[(b"etag", b'"v1"')])
    mw = middleware(app, make_settings(), ledger)
    (etag,) = header(await call(mw, http_scope()), b"etag")
    await call(mw, http_scope(headers=[(b"if-none-match", etag)]))
    assert (b"if-none-match", b'"v1", W/"v1"') in app.scope["headers"]
    # A tag made for another consent variant never reaches the app.
    await call(mw, http_scope(headers=[(b"if-none-match", etag), consent_cookie(mw, "matomo")]))
    assert all(name != b"if-none-match" for name, _ in app.scope["headers"])


async def test_streamed_html_equals_the_whole_rewrite(ledger: SQLiteStore) -> None:
    settings = make_settings()
    whole = body_of(await call(middleware(html_app(), settings, ledger), http_scope()))
    for size in (1, 5, 64):
        chunks = [PAGE[i : i + size] for i in range(0, len(PAGE), size)]
        sent = await call(middleware(html_app(chunks), settings, ledger), http_scope())
        assert body_of(sent) == whole
        assert header(sent, b"content-length") == []
        assert sent[-1]["more_body"] is False


async def test_consent_lets_tags_through(ledger: SQLiteStore) -> None:
    mw = middleware(html_app(), make_settings(), ledger)
    cookie = consent_cookie(mw, "google_tag_manager", "matomo", "facebook_pixel")
    body = body_of(await call(mw, http_scope(headers=[cookie])))
    assert len(leaks(body, NEEDLES)) == 3


async def test_non_html_and_head_pass_untouched(ledger: SQLiteStore) -> None:
    settings = make_settings()
    for headers, method in (
        ([(b"content-type", b"application/json")], "GET"),
        ([(b"content-type", b"text/event-stream")], "GET"),
        ([(b"content-type", b"text/html")], "HEAD"),
    ):
        app = App(headers, [PAGE[:50], PAGE[50:]])
        sent = await call(middleware(app, settings, ledger), http_scope(method))
        assert sent[0]["headers"] is headers
        assert [m.get("body") for m in sent[1:]] == [PAGE[:50], PAGE[50:]]


@pytest.mark.parametrize("coding", [b"gzip", b"deflate"])
async def test_compressed_html_is_decoded_rewritten_and_encoded(
    ledger: SQLiteStore, coding: bytes
) -> None:
    wbits = 31 if coding == b"gzip" else 15
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    packed = compressor.compress(PAGE) + compressor.flush()
    settings = make_settings()
    for chunks in ([packed], [packed[i : i + 7] for i in range(0, len(packed), 7)]):
        app = html_app(chunks, [(b"content-encoding", coding)])
        sent = await call(middleware(app, settings, ledger), http_scope())
        body = zlib.decompress(body_of(sent), wbits)
        assert leaks(body, NEEDLES) == []
        assert b"<p>Hallo</p>" in body
        assert header(sent, b"content-encoding") == [coding]


async def test_undecodable_coding_passes_and_is_not_requested(ledger: SQLiteStore) -> None:
    app = html_app([b"\x00brotli"], [(b"content-encoding", b"br")])
    scope = http_scope(headers=[(b"accept-encoding", b"br, gzip;q=0.8, zstd")])
    sent = await call(middleware(app, make_settings(), ledger), scope)
    assert (b"accept-encoding", b"gzip;q=0.8") in app.scope["headers"]
    assert body_of(sent) == b"\x00brotli"


async def test_set_cookie_of_services_without_consent_is_dropped(ledger: SQLiteStore) -> None:
    cookies = [
        (b"set-cookie", b"_fbp=fb.1.123; Path=/; Max-Age=7776000"),
        (b"set-cookie", b"_pk_id.1.abcd=xyz; Path=/"),
        (b"set-cookie", b"session=abc; HttpOnly"),
    ]
    for content_type in (b"text/html", b"application/json"):
        app = App([(b"content-type", content_type), *cookies], [b"{}"])
        mw = middleware(app, make_settings(), ledger)
        sent = await call(mw, http_scope())
        assert header(sent, b"set-cookie") == [b"session=abc; HttpOnly"]
        granted = await call(mw, http_scope(headers=[consent_cookie(mw, "matomo")]))
        assert header(granted, b"set-cookie") == [
            b"_pk_id.1.abcd=xyz; Path=/",
            b"session=abc; HttpOnly",
        ]
    assert ("cookie", "session", "/") in mw.audit.pending()


async def test_cookies_of_refused_services_are_expired(ledger: SQLiteStore) -> None:
    mw = middleware(html_app(), make_settings(), ledger)
    scope = http_scope(headers=[(b"cookie", b"_pk_id.1.ab=1; _fbp=2; theme=dark")])
    expired = header(await call(mw, scope), b"set-cookie")
    names = {v.split(b"=", 1)[0] for v in expired}
    assert names == {b"_pk_id.1.ab", b"_fbp"}
    assert all(b"Max-Age=0" in v for v in expired)
    assert (
        b"_fbp=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/;"
        b" Domain=stadtwerke.example" in expired
    )


async def test_withdrawal_expires_the_withdrawn_services_cookies(ledger: SQLiteStore) -> None:
    mw = middleware(html_app(), make_settings(), ledger)
    scope = http_scope(
        "POST",
        "/_consent/decision",
        [
            consent_cookie(mw, "matomo"),
            (b"cookie", b"_pk_ses.1.ab=1"),
            (b"content-type", b"application/json"),
            (b"origin", f"https://{HOST}".encode()),
        ],
    )
    sent = await call(mw, scope, b'{"accept": "none"}')
    assert sent[0]["status"] == 200
    assert any(v.startswith(b"_pk_ses.1.ab=; Max-Age=0") for v in header(sent, b"set-cookie"))


async def test_csp_lists_only_allowed_services(ledger: SQLiteStore) -> None:
    settings = make_settings(csp={"mode": "enforce", "script_src": ["cdn.example.net"]})
    mw = middleware(html_app(), settings, ledger)
    (policy,) = header(await call(mw, http_scope()), b"content-security-policy")
    assert b"googletagmanager" not in policy and b"etracker" not in policy
    assert b"script-src 'self' 'unsafe-inline' 'unsafe-eval' cdn.example.net" in policy
    (granted,) = header(
        await call(mw, http_scope(headers=[consent_cookie(mw, "google_tag_manager", "etracker")])),
        b"content-security-policy",
    )
    assert b"www.googletagmanager.com/gtm.js" in granted and b"*.etracker.com" in granted
    assert b"facebook" not in granted
    # Embeds stay framable (their markup blocks them): "load once" needs no consent.
    frame_src = next(d for d in policy.split(b"; ") if d.startswith(b"frame-src"))
    assert b"www.youtube-nocookie.com" in frame_src
    report_only = make_settings(csp={"mode": "report-only", "report_uri": "/csp"})
    sent = await call(middleware(html_app(), report_only, ledger), http_scope())
    assert header(sent, b"content-security-policy-report-only")[0].endswith(b"report-uri /csp")


async def test_app_csp_nonce_is_reused_for_the_injected_script(ledger: SQLiteStore) -> None:
    app = html_app(
        extra=[(b"content-security-policy", b"script-src 'nonce-abc123' 'strict-dynamic'")]
    )
    body = body_of(await call(middleware(app, make_settings(), ledger), http_scope()))
    assert b'<script data-consentgate="consent-mode" nonce="abc123">' in body
    # The banner too: under 'strict-dynamic' a script without the nonce never loads.
    assert b'<link nonce="abc123" rel="preload" as="style"' in body
    assert b'<script nonce="abc123" type="module" src="/_consent/banner.js' in body


async def test_gpc_refuses_marketing_even_with_consent(ledger: SQLiteStore) -> None:
    mw = middleware(html_app(), make_settings(), ledger)
    cookie = consent_cookie(mw, "google_tag_manager", "matomo", "facebook_pixel")
    app = mw.app
    body = body_of(await call(mw, http_scope(headers=[cookie, (b"sec-gpc", b"1")])))
    assert leaks(body, ["googletagmanager.com", "facebook.com/tr"]) == []
    assert leaks(body, ["_paq"])
    state = app.scope["consentgate"]  # type: ignore[attr-defined]
    assert not state.allows("facebook_pixel") and state.allows("matomo")


async def test_dnt_blocks_services_that_honour_it(ledger: SQLiteStore) -> None:
    mw = middleware(html_app(), make_settings(), ledger)
    cookie = consent_cookie(mw, "google_tag_manager", "matomo")
    body = body_of(await call(mw, http_scope(headers=[cookie, (b"dnt", b"1")])))
    assert leaks(body, ["_paq"]) == []
    assert leaks(body, ["googletagmanager.com"])
    off = make_settings(signals={"dnt": False, "gpc": []})
    mw_off = middleware(html_app(), off, ledger)
    cookie = consent_cookie(mw_off, "matomo", "facebook_pixel")
    body = body_of(
        await call(mw_off, http_scope(headers=[cookie, (b"dnt", b"1"), (b"sec-gpc", b"1")]))
    )
    assert leaks(body, ["_paq", "facebook.com/tr"]) != []


async def test_banner_assets_are_injected_and_served(ledger: SQLiteStore, tmp_path: Path) -> None:
    (tmp_path / "banner.js").write_text("console.log('banner');")
    (tmp_path / "banner.css").write_text(".consentgate{color:#000}")
    assets = BannerAssets(tmp_path)
    mw = middleware(html_app(), make_settings(), ledger, assets=assets)
    body = body_of(await call(mw, http_scope()))
    js = assets.files["banner.js"]
    assert f'<script type="module" src="/_consent/banner.js?v={js.version}"'.encode() in body
    assert body.index(b"banner.css") < body.index(b"banner.js") < body.index(b"googletagmanager")
    sent = await call(
        mw, http_scope(path="/_consent/banner.js", headers=[(b"accept-encoding", b"gzip")])
    )
    assert sent[0]["status"] == 200
    assert gzip.decompress(body_of(sent)) == b"console.log('banner');"
    assert header(sent, b"cache-control") == [b"public, max-age=300"]
    scope = http_scope(path="/_consent/banner.js")
    scope["query_string"] = f"v={js.version}".encode()
    versioned = await call(mw, scope)
    assert header(versioned, b"cache-control") == [b"public, max-age=31536000, immutable"]
    not_modified = await call(
        mw, http_scope(path="/_consent/banner.js", headers=[(b"if-none-match", js.etag.encode())])
    )
    assert not_modified[0]["status"] == 304


async def test_identical_pages_are_rewritten_once(ledger: SQLiteStore) -> None:
    mw = middleware(html_app(), make_settings(), ledger)
    first = body_of(await call(mw, http_scope()))
    second = body_of(await call(mw, http_scope()))
    third = body_of(await call(mw, http_scope()))
    assert first == second == third
    # Kept once seen twice, then served from memory.
    assert (mw.gate.cache.hits, mw.gate.cache.misses) == (1, 2)


async def test_pathsend_is_disabled_for_the_app(ledger: SQLiteStore) -> None:
    app = html_app()
    scope = http_scope()
    scope["extensions"] = {"http.response.pathsend": {}, "other": {}}
    await call(middleware(app, make_settings(), ledger), scope)
    assert app.scope["extensions"] == {"other": {}}


async def test_fifty_megabytes_stream_in_bounded_memory(ledger: SQLiteStore) -> None:
    block = (b"<p>" + b"Strom und Gas f\xc3\xbcr Musterstadt. " * 30 + b"</p>\n") * 64
    count = 50 * 1024 * 1024 // len(block)
    tail = b'<script src="https://code.etracker.com/code/e.js"></script></body></html>'

    class Big:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/html")],
                }
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": b"<html><head></head><body>",
                    "more_body": True,
                }
            )
            for _ in range(count):
                await send({"type": "http.response.body", "body": block, "more_body": True})
            await send({"type": "http.response.body", "body": tail, "more_body": False})

    total = 0
    last = b""

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        nonlocal total, last
        if message["type"] == "http.response.body":
            total += len(message["body"])
            last = (last + message["body"])[-400:]

    mw = middleware(Big(), make_settings(), ledger)
    tracemalloc.start()
    await mw(http_scope(), receive, send)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert total > 50 * 1024 * 1024 * 0.99
    assert b'data-consentgate-src="https://code.etracker.com/code/e.js"' in last
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"
