"""ConsentMiddleware at the raw ASGI level: what it passes through and what it adds."""

from __future__ import annotations

from typing import Any

from starlette.types import Receive, Scope, Send

from consentgate.config import Settings
from consentgate.consent import ConsentState, new_consent_id
from consentgate.consent.sqlite import SQLiteStore
from consentgate.middleware import ConsentMiddleware

from .helpers import call

Message = dict[str, Any]


class Recorder:
    """An inner app that records the scope it was called with and answers 204."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})


def http_scope(path: str = "/", cookie: str | None = None) -> dict[str, Any]:
    headers = [(b"host", b"example.de")]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    return {"type": "http", "method": "GET", "path": path, "headers": headers, "query_string": b""}


async def test_lifespan_passes_straight_through(settings: Settings, store: SQLiteStore) -> None:
    inner = Recorder()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await call(ConsentMiddleware(inner, settings=settings, store=store), scope)
    assert inner.scopes == [{"type": "lifespan", "asgi": {"version": "3.0"}}]


async def test_http_scope_gets_undecided_state_without_cookie(
    settings: Settings, store: SQLiteStore
) -> None:
    inner = Recorder()
    sent = await call(ConsentMiddleware(inner, settings=settings, store=store), http_scope())
    state = inner.scopes[0]["consentgate"]
    assert isinstance(state, ConsentState)
    assert not state.decided and not state.allows("matomo")
    assert sent[0]["status"] == 204, "the app's response passes unchanged"


async def test_cookie_among_others_and_split_cookie_headers(
    settings: Settings, store: SQLiteStore
) -> None:
    inner = Recorder()
    middleware = ConsentMiddleware(inner, settings=settings, store=store)
    value = middleware.codec.encode(new_consent_id(), ["econda"])
    scope = http_scope(cookie="_pk_id.1=abc; theme=dark")
    scope["headers"].append((b"cookie", f"consentgate={value}".encode()))  # HTTP/2 splits them
    await call(middleware, scope)
    assert inner.scopes[0]["consentgate"].allows("econda")


async def test_websocket_scope_gets_the_state_too(settings: Settings, store: SQLiteStore) -> None:
    inner = Recorder()
    middleware = ConsentMiddleware(inner, settings=settings, store=store)
    value = middleware.codec.encode(new_consent_id(), ["youtube"])
    scope = http_scope("/_consent/state", cookie=f"consentgate={value}")
    scope["type"] = "websocket"
    await call(middleware, scope)
    assert inner.scopes[0]["consentgate"].allows("youtube"), "prefix routes are HTTP only"


async def test_prefix_lookalike_paths_reach_the_app(settings: Settings, store: SQLiteStore) -> None:
    inner = Recorder()
    await call(ConsentMiddleware(inner, settings=settings, store=store), http_scope("/_consentfoo"))
    assert len(inner.scopes) == 1


async def test_repr_shows_no_secret(settings: Settings, store: SQLiteStore) -> None:
    middleware = ConsentMiddleware(Recorder(), settings=settings, store=store)
    assert "k" * 40 not in repr(middleware)
    assert "k" * 40 not in repr(middleware.codec)
