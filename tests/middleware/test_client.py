"""The visitor's address: trusted proxies only, masked before the app, headers removed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from consentgate.config import IPSettings, Settings
from consentgate.middleware import ClientAddressMiddleware, ConsentMiddleware
from consentgate.middleware.client import TrustedProxies, forwarded_for, x_forwarded_for

from .helpers import Message, call, make_settings

Headers = list[tuple[str, str]]


async def seen(request: Request) -> JSONResponse:
    """What the app (and any logging or error reporting inside it) can learn."""
    return JSONResponse(
        {
            "client": list(request.client) if request.client else None,
            "scheme": request.url.scheme,
            "headers": sorted({k for k in request.headers}),
            "values": " ".join(request.headers.values()),
        }
    )


async def ws_seen(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"client": list(websocket.client) if websocket.client else None})
    await websocket.close()


def app_behind(settings: IPSettings) -> Starlette:
    app = Starlette(routes=[Route("/", seen), WebSocketRoute("/ws", ws_seen)])
    app.add_middleware(ClientAddressMiddleware, settings=settings)
    return app


async def visit(settings: IPSettings, peer: str, headers: Headers | None = None) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app_behind(settings), client=(peer, 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://site.example") as client:
        response = await client.get("/", headers=headers or [])
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


PROXIES = IPSettings(trusted_proxies=["127.0.0.1", "10.0.0.0/8", "2001:db8:ffff::/48"])


@pytest.mark.parametrize(
    ("settings", "peer", "headers", "expected"),
    [
        pytest.param(IPSettings(), "203.0.113.77", [], "203.0.113.0", id="direct-ipv4"),
        pytest.param(IPSettings(), "2001:db8:1:2::5", [], "2001:db8:1::", id="direct-ipv6"),
        pytest.param(
            IPSettings(), "::ffff:203.0.113.77", [], "::ffff:203.0.113.0", id="direct-mapped"
        ),
        pytest.param(
            IPSettings(ipv4_prefix=16), "203.0.113.77", [], "203.0.0.0", id="configured-prefix"
        ),
        pytest.param(
            IPSettings(),
            "203.0.113.77",
            [("x-forwarded-for", "198.51.100.9")],
            "203.0.113.0",
            id="no-proxies-trusted-header-ignored",
        ),
        pytest.param(
            PROXIES,
            "198.51.100.200",
            [("x-forwarded-for", "192.0.2.1")],
            "198.51.100.0",
            id="forged-xff-from-untrusted-peer-ignored",
        ),
        pytest.param(
            PROXIES,
            "127.0.0.1",
            [("x-forwarded-for", "198.51.100.9")],
            "198.51.100.0",
            id="one-trusted-proxy",
        ),
        pytest.param(
            PROXIES,
            "127.0.0.1",
            [("x-forwarded-for", "192.0.2.66, 198.51.100.9, 10.1.2.3")],
            "198.51.100.0",
            id="two-trusted-proxies-forged-left-part-ignored",
        ),
        pytest.param(
            PROXIES,
            "127.0.0.1",
            [("x-forwarded-for", "192.0.2.66"), ("x-forwarded-for", "198.51.100.9, 10.1.2.3")],
            "198.51.100.0",
            id="header-split-over-lines",
        ),
        pytest.param(
            PROXIES,
            "127.0.0.1",
            [("x-forwarded-for", "10.9.9.9, 10.1.2.3")],
            "10.9.9.0",
            id="only-trusted-hops-leftmost",
        ),
        pytest.param(
            PROXIES,
            "127.0.0.1",
            [("x-forwarded-for", "198.51.100.9:51234")],
            "198.51.100.0",
            id="xff-with-port",
        ),
        pytest.param(
            PROXIES,
            "2001:db8:ffff::1",
            [("x-forwarded-for", "[2001:db8:77:1::99]:443")],
            "2001:db8:77::",
            id="ipv6-proxy-bracketed-client",
        ),
        pytest.param(
            PROXIES,
            "127.0.0.1",
            [("x-forwarded-for", "<script>, 10.1.2.3")],
            None,
            id="garbage-next-to-trusted-hops-means-unknown",
        ),
        pytest.param(
            PROXIES,
            "127.0.0.1",
            [],
            "127.0.0.0",
            id="trusted-peer-without-header-is-the-client",
        ),
        pytest.param(
            PROXIES,
            "127.0.0.1",
            [("forwarded", "for=192.0.2.60")],
            "127.0.0.0",
            id="other-header-than-configured-is-not-read",
        ),
        pytest.param(
            IPSettings(trusted_proxies=["127.0.0.1"], proxy_header="forwarded"),
            "127.0.0.1",
            [("forwarded", 'for=192.0.2.43;proto=https, for="[2001:db8:cafe::17]:4711"')],
            "2001:db8:cafe::",
            id="forwarded-rfc7239-ipv6-quoted",
        ),
        pytest.param(
            IPSettings(trusted_proxies=["127.0.0.1", "10.0.0.0/8"], proxy_header="forwarded"),
            "127.0.0.1",
            [("forwarded", "for=192.0.2.43, For=10.0.0.5;by=10.0.0.1")],
            "192.0.2.0",
            id="forwarded-two-hops-case-insensitive",
        ),
        pytest.param(
            IPSettings(trusted_proxies=["127.0.0.1"], proxy_header="forwarded"),
            "127.0.0.1",
            [("forwarded", "for=unknown")],
            None,
            id="forwarded-unknown",
        ),
        pytest.param(
            IPSettings(trusted_proxies=["127.0.0.1"], proxy_header="forwarded"),
            "127.0.0.1",
            [("forwarded", "for=_hidden;proto=https")],
            None,
            id="forwarded-obfuscated",
        ),
        pytest.param(
            IPSettings(trusted_proxies=["127.0.0.1"], proxy_header="forwarded"),
            "203.0.113.5",
            [("forwarded", "for=192.0.2.43")],
            "203.0.113.0",
            id="forwarded-from-untrusted-peer-ignored",
        ),
    ],
)
async def test_app_sees_the_masked_client(
    settings: IPSettings, peer: str, headers: Headers, expected: str | None
) -> None:
    """Asserted from inside a route: the address the app sees, and its port, are masked."""
    app_view = await visit(settings, peer, headers)
    assert app_view["client"] == ([expected, 0] if expected is not None else None)


async def test_address_headers_never_reach_the_app() -> None:
    headers = [
        ("x-forwarded-for", "198.51.100.9"),
        ("forwarded", "for=198.51.100.9"),
        ("x-real-ip", "198.51.100.9"),
        ("true-client-ip", "198.51.100.9"),
        ("cf-connecting-ip", "198.51.100.9"),
        ("x-client-ip", "198.51.100.9"),
        ("x-forwarded-proto", "https"),
    ]
    app_view = await visit(PROXIES, "127.0.0.1", headers)
    assert "198.51.100.9" not in app_view["values"]
    assert "x-forwarded-proto" in app_view["headers"]
    assert not {"x-forwarded-for", "forwarded", "x-real-ip"} & set(app_view["headers"])


async def test_websocket_sees_the_masked_client() -> None:
    app = app_behind(PROXIES)
    sent: list[Message] = []
    incoming: list[Message] = [
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 1000},
    ]

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": [(b"x-forwarded-for", b"198.51.100.9"), (b"host", b"site.example")],
        "client": ("127.0.0.1", 5555),
        "query_string": b"",
        "scheme": "ws",
    }
    await app(scope, receive, send)
    texts = [m["text"] for m in sent if m["type"] == "websocket.send"]
    assert texts == ['{"client":["198.51.100.0",0]}']


async def test_consent_middleware_masks_before_the_app_and_the_ledger(tmp_path: Any) -> None:
    settings = make_settings(
        store_url=f"sqlite:///{tmp_path}/ledger.db",
        ip={"trusted_proxies": ["127.0.0.1"]},
    )
    app = Starlette(routes=[Route("/", seen)])
    app.add_middleware(ConsentMiddleware, settings=settings)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://site.example") as client:
        view = (await client.get("/", headers={"x-forwarded-for": "198.51.100.9"})).json()
        receipt = await client.post(
            "/_consent/decision",
            json={"accept": "all"},
            headers={"x-forwarded-for": "198.51.100.9"},
        )
    assert view["client"] == ["198.51.100.0", 0]
    assert receipt.status_code == 200
    middleware = _consent_middleware(app)
    records = await middleware.store.records_for(receipt.json()["consent_id"])
    assert [r.ip for r in records] == ["198.51.100.0"]


def _consent_middleware(app: Starlette) -> ConsentMiddleware:
    stack: Any = app.middleware_stack
    while not isinstance(stack, ConsentMiddleware):
        stack = stack.app
    return stack


async def test_raw_asgi_scope_keeps_nothing_of_the_address() -> None:
    """Chunk level: the scope handed on has port 0 and no address header, the input is intact."""
    received: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(b"x-real-ip", b"198.51.100.9"), (b"host", b"a")],
        "client": ("203.0.113.77", 61000),
    }
    await call(ClientAddressMiddleware(app), scope)
    assert received[0]["client"] == ("203.0.113.0", 0)
    assert received[0]["headers"] == [(b"host", b"a")]
    assert scope["client"] == ("203.0.113.77", 61000)  # the server's scope is not mutated


async def test_lifespan_passes_through() -> None:
    kinds: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        kinds.append(scope["type"])

    await ClientAddressMiddleware(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert kinds == ["lifespan"]


@pytest.mark.parametrize(
    ("values", "hops"),
    [
        pytest.param([b"a, 1.2.3.4"], [None, "1.2.3.4"], id="garbage-is-none"),
        pytest.param([b" 1.2.3.4 ,, 5.6.7.8 "], ["1.2.3.4", "5.6.7.8"], id="spaces-empty"),
        pytest.param([b"[::1]:80, ::1"], ["::1", "::1"], id="ipv6-forms"),
    ],
)
def test_x_forwarded_for_parsing(values: list[bytes], hops: list[str | None]) -> None:
    assert x_forwarded_for(values) == hops


@pytest.mark.parametrize(
    ("values", "hops"),
    [
        pytest.param([b'for="1.2.3.4:80";by=x'], ["1.2.3.4"], id="quoted-port"),
        pytest.param([b'for="a,b"'], [None], id="comma-inside-quotes"),
        pytest.param([b"proto=https"], [None], id="element-without-for"),
        pytest.param([b"for=1.2.3.4", b"FOR=5.6.7.8"], ["1.2.3.4", "5.6.7.8"], id="two-lines"),
    ],
)
def test_forwarded_parsing(values: list[bytes], hops: list[str | None]) -> None:
    assert forwarded_for(values) == hops


def test_trusted_proxies_match_mapped_addresses() -> None:
    trusted = TrustedProxies(["127.0.0.1"])
    assert trusted.contains("::ffff:127.0.0.1")
    assert not trusted.contains("127.0.0.2")
    assert not trusted.contains("not-an-ip")


@pytest.mark.parametrize(
    ("proxies", "message"),
    [
        pytest.param(["0.0.0.0/0"], "trusts every sender", id="everyone-v4"),
        pytest.param(["::/0"], "trusts every sender", id="everyone-v6"),
        pytest.param(["proxy.local"], "not an IP address or network", id="hostname"),
        pytest.param(["10.0.0.0/33"], "not an IP address or network", id="bad-prefix"),
    ],
)
def test_bad_trusted_proxies_are_config_errors(proxies: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_mapping({"secret_keys": ["k" * 40], "ip": {"trusted_proxies": proxies}})


def test_trusted_proxies_are_normalised() -> None:
    settings = IPSettings(trusted_proxies=["10.1.2.3/8", " ::1 "])
    assert settings.trusted_proxies == ["10.0.0.0/8", "::1/128"]


@pytest.mark.parametrize(
    ("settings", "peer", "headers", "scheme"),
    [
        pytest.param(
            PROXIES,
            "127.0.0.1",
            [("x-forwarded-for", "198.51.100.9"), ("x-forwarded-proto", "https")],
            "https",
            id="trusted-proxy-says-https",
        ),
        pytest.param(
            PROXIES,
            "198.51.100.200",
            [("x-forwarded-for", "198.51.100.9"), ("x-forwarded-proto", "https")],
            "http",
            id="untrusted-sender-ignored",
        ),
        pytest.param(
            PROXIES,
            "127.0.0.1",
            [("x-forwarded-for", "198.51.100.9, 10.0.0.5"), ("x-forwarded-proto", "https, http")],
            "https",
            id="per-hop-protos-take-the-clients",
        ),
        pytest.param(
            PROXIES,
            "127.0.0.1",
            [("x-forwarded-for", "198.51.100.9"), ("x-forwarded-proto", "gopher")],
            "http",
            id="unknown-scheme-ignored",
        ),
        pytest.param(
            IPSettings(trusted_proxies=["127.0.0.1", "10.0.0.0/8"], proxy_header="forwarded"),
            "127.0.0.1",
            [("forwarded", "for=192.0.2.43;proto=https, for=10.0.0.5;proto=http")],
            "https",
            id="forwarded-proto-of-the-client-element",
        ),
    ],
)
async def test_scheme_comes_from_trusted_proxies_only(
    settings: IPSettings, peer: str, headers: Headers, scheme: str
) -> None:
    assert (await visit(settings, peer, headers))["scheme"] == scheme


FORWARDED = IPSettings(trusted_proxies=["127.0.0.1"], proxy_header="forwarded")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            [("forwarded", 'for=9.9.9.9;x=", for=198.51.100.7')],
            None,
            id="open-quote-swallowing-the-proxys-element-on-one-line",
        ),
        pytest.param(
            [("forwarded", 'for=9.9.9.9;x="'), ("forwarded", "for=198.51.100.7")],
            "198.51.100.0",
            id="open-quote-on-the-visitors-own-line",
        ),
        pytest.param(
            [("forwarded", 'for="9.9.9.9\\", for=198.51.100.7')],
            None,
            id="escaped-quote-inside-value",
        ),
        pytest.param(
            [("forwarded", "for=9.9.9.9;for=8.8.8.8, for=198.51.100.7")],
            None,
            id="parameter-twice-in-an-element",
        ),
        pytest.param(
            [("forwarded", "for=9.9.9.9 garbage, for=198.51.100.7")],
            None,
            id="junk-between-pairs",
        ),
    ],
)
async def test_malformed_forwarded_never_lets_the_visitor_choose(
    headers: Headers, expected: str | None
) -> None:
    """A line that does not parse is one unknown hop: the walk stops there, unspoofed."""
    app_view = await visit(FORWARDED, "127.0.0.1", headers)
    assert app_view["client"] == ([expected, 0] if expected is not None else None)


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        pytest.param("[2001:db8::1]", ["2001:db8::", 0], id="bracketed"),
        pytest.param("203.0.113.77:5555", ["203.0.113.0", 0], id="with-port"),
        pytest.param("testclient", None, id="not-an-address"),
        pytest.param("/run/app.sock", None, id="socket-path"),
    ],
)
async def test_odd_peers_never_reach_the_app_unmasked(peer: str, expected: Any) -> None:
    assert (await visit(IPSettings(), peer))["client"] == expected


def test_mapped_trusted_proxies_are_compared_as_ipv4() -> None:
    settings = IPSettings(trusted_proxies=["::ffff:127.0.0.1", "::ffff:10.0.0.0/104"])
    assert settings.trusted_proxies == ["127.0.0.1/32", "10.0.0.0/8"]
    assert TrustedProxies(settings.trusted_proxies).contains("::ffff:10.1.2.3")


async def test_cloud_address_headers_are_removed_too() -> None:
    headers = [(name, "198.51.100.9") for name in ("cf-connecting-ipv6", "fly-client-ip")]
    headers += [("x-vercel-forwarded-for", "198.51.100.9")]
    assert "198.51.100.9" not in (await visit(IPSettings(), "203.0.113.5", headers))["values"]
