"""The consent API through the middleware: decisions, state, and every refused request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from consentgate.config import Settings
from consentgate.consent.sqlite import SQLiteStore
from consentgate.middleware import ConsentMiddleware
from consentgate.widgets import build_catalogue

Data = Callable[..., dict[str, Any]]
ORIGIN = {"origin": "http://testserver"}
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"


async def whoami(request: Request) -> JSONResponse:
    state = request.scope["consentgate"]
    return JSONResponse(
        {
            "decided": state.decided,
            "consent_id": state.consent_id,
            "matomo": state.allows("matomo"),
            "youtube": state.allows("youtube"),
        }
    )


def make_app(settings: Settings, store: SQLiteStore) -> ConsentMiddleware:
    inner = Starlette(routes=[Route("/", whoami)])
    return ConsentMiddleware(inner, settings=settings, store=store)


@pytest.fixture
async def client(settings: Settings, store: SQLiteStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(settings, store), client=("203.0.113.77", 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def decide(client: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    return await client.post(
        "/_consent/decision", json=body, headers={**ORIGIN, "user-agent": FIREFOX, **headers}
    )


async def test_decision_round_trip(
    client: httpx.AsyncClient, store: SQLiteStore, settings: Settings
) -> None:
    assert (await client.get("/")).json()["decided"] is False
    response = await decide(
        client,
        {
            "services": {"matomo": True, "youtube": False},
            "page": "http://testserver/strom?tarif=öko#x",
        },
    )
    assert response.status_code == 200
    receipt = response.json()
    assert receipt["action"] == "custom"
    assert receipt["granted"] == ["matomo"]
    assert set(receipt["refused"]) == settings.optional_service_ids - {"matomo"}
    assert receipt["revision"] == 1
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("consentgate=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=31536000" in cookie
    assert "Secure" not in cookie, "auto: plain http here"
    assert response.headers["cache-control"] == "no-store"

    seen = (await client.get("/")).json()
    assert seen == {
        "decided": True,
        "consent_id": receipt["consent_id"],
        "matomo": True,
        "youtube": False,
    }

    [record] = await store.records_for(receipt["consent_id"])
    assert record.record_id == receipt["record_id"] and record.hash == receipt["hash"]
    assert record.page_url == "http://testserver/strom"
    assert record.ip == "203.0.113.0"
    assert (record.browser, record.os) == ("Firefox", "Windows")
    assert record.language == "de"
    assert record.fingerprint == receipt["fingerprint"]
    assert await store.banner(record.fingerprint) is not None


async def test_accept_all_reject_all_and_withdrawal_keep_one_consent_id(
    client: httpx.AsyncClient, store: SQLiteStore, settings: Settings
) -> None:
    first = (await decide(client, {"accept": "all"})).json()
    assert first["action"] == "accept-all"
    assert set(first["granted"]) == settings.optional_service_ids
    assert (await client.get("/")).json()["youtube"] is True
    second = (await decide(client, {"accept": "none"})).json()
    assert second["action"] == "withdraw"
    assert second["consent_id"] == first["consent_id"]
    assert (await client.get("/")).json()["youtube"] is False
    third = (await decide(client, {"accept": "none"})).json()
    assert third["action"] == "reject-all"
    history = await store.records_for(first["consent_id"])
    assert [r.action for r in history] == ["accept-all", "withdraw", "reject-all"]
    assert (await store.verify()).ok


async def test_state_reports_decision_and_catalogue(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    state = (await client.get("/_consent/state")).json()
    assert state["decided"] is False and state["granted"] == []
    assert "consent_id" not in state, "page scripts must not learn the consent id"
    assert state["language"] == "de"
    assert state["catalogue"]["texts"]["reject_all"] == "Alle ablehnen"
    assert {s["id"] for s in state["catalogue"]["services"]} == set(settings.services)
    receipt = (await decide(client, {"services": {"youtube": True}})).json()
    state = (
        await client.get("/_consent/state", headers={"accept-language": "en-GB,en;q=0.9"})
    ).json()
    assert state["decided"] is True and state["granted"] == ["youtube"]
    assert "consent_id" not in state and receipt["consent_id"]
    assert state["language"] == "en"
    assert state["catalogue"]["texts"]["reject_all"] == "Reject all"
    assert state["fingerprint"] != receipt["fingerprint"], "each language has its own banner"
    assert (await client.get("/_consent/state?lang=de", headers={"accept-language": "en"})).json()[
        "language"
    ] == "de"


async def test_state_is_gzipped_when_the_browser_takes_it(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    plain = await client.get("/_consent/state", headers={"accept-encoding": "identity"})
    packed = await client.get("/_consent/state", headers={"accept-encoding": "gzip, br"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["vary"]
    assert packed.json() == plain.json()
    assert plain.json()["catalogue"] == build_catalogue(settings, "de").data
    assert int(packed.headers["content-length"]) * 3 < int(plain.headers["content-length"])


@pytest.mark.parametrize(
    ("query", "accept_language", "expected"),
    [
        pytest.param("page_lang=en", "de-DE", "en", id="english-page"),
        pytest.param("page_lang=de", "en-GB,en;q=0.9", "en", id="german-page-english-visitor"),
        pytest.param("page_lang=de-DE", "de", "de", id="german-page-german-visitor"),
        pytest.param("page_lang=fr", "fr", "de", id="unoffered-falls-back-to-default"),
        pytest.param("page_lang=en&lang=de", "en", "de", id="explicit-choice-wins"),
    ],
)
async def test_banner_language_follows_page_then_visitor(
    client: httpx.AsyncClient, query: str, accept_language: str, expected: str
) -> None:
    response = await client.get(
        f"/_consent/state?{query}", headers={"accept-language": accept_language}
    )
    assert response.json()["language"] == expected


@pytest.mark.parametrize(
    ("headers", "signals", "objected"),
    [
        pytest.param({}, [], [], id="none"),
        pytest.param({"sec-gpc": "1"}, ["GPC"], ["facebook_pixel", "google_ads"], id="gpc"),
        pytest.param({"dnt": "1"}, ["DNT"], ["etracker", "matomo"], id="dnt"),
        pytest.param({"dnt": "0", "sec-gpc": "0"}, [], [], id="explicit-no"),
    ],
)
async def test_state_says_which_browser_signals_keep_services_off(
    client: httpx.AsyncClient, headers: dict[str, str], signals: list[str], objected: list[str]
) -> None:
    await decide(client, {"accept": "all"})
    response = await client.get("/_consent/state", headers=headers)
    state = response.json()
    assert state["signals"] == signals
    assert set(objected) <= set(state["objected"])
    assert bool(state["objected"]) == bool(objected)
    assert "Sec-GPC" in response.headers["vary"] and "DNT" in response.headers["vary"]


async def test_fingerprint_of_a_changed_banner_is_refused(
    client: httpx.AsyncClient, store: SQLiteStore
) -> None:
    state = (await client.get("/_consent/state")).json()
    ok = await decide(client, {"accept": "all", "fingerprint": state["fingerprint"]})
    assert ok.status_code == 200
    stale = await decide(client, {"accept": "all", "fingerprint": "0" * 64})
    assert stale.status_code == 409
    assert stale.json()["field"] == "fingerprint"
    assert await store.count() == 1


BAD_REQUESTS: dict[str, tuple[bytes, dict[str, str], int, str]] = {
    "malformed_json": (b'{"accept": "all"', {}, 400, "not valid JSON"),
    "not_utf8": (b'{"accept": "\xff"}', {}, 400, "not valid JSON"),
    "json_array": (b'["all"]', {}, 400, "JSON object"),
    "empty_object": (b"{}", {}, 422, "exactly one of"),
    "both_forms": (b'{"accept": "all", "services": {"matomo": true}}', {}, 422, "exactly one of"),
    "accept_unknown": (b'{"accept": "some"}', {}, 422, "accept"),
    "unknown_service": (b'{"services": {"hotjar": true}}', {}, 422, "unknown service 'hotjar'"),
    "service_not_bool": (b'{"services": {"matomo": "yes"}}', {}, 422, "services.matomo"),
    "service_as_int": (b'{"services": {"matomo": 1}}', {}, 422, "services.matomo"),
    "unknown_field": (b'{"accept": "all", "tracking": true}', {}, 422, "tracking: unknown field"),
    "page_not_url": (b'{"accept": "all", "page": "javascript:alert(1)"}', {}, 422, "page"),
    "page_other_site": (
        b'{"accept": "all", "page": "https://evil.example/"}',
        {},
        422,
        "not a page of this site",
    ),
    "language_unknown": (b'{"accept": "all", "language": "fr"}', {}, 422, "language"),
    "fingerprint_malformed": (b'{"accept": "all", "fingerprint": "abc"}', {}, 422, "fingerprint"),
    "wrong_content_type": (
        b'{"accept": "all"}',
        {"content-type": "text/plain"},
        415,
        "application/json",
    ),
    "form_post": (
        b"accept=all",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "application/json",
    ),
    "oversize": (b'{"accept": "all", "page": "' + b"a" * 9000 + b'"}', {}, 413, "larger than"),
    "cross_site_origin": (
        b'{"accept": "all"}',
        {"origin": "https://evil.example"},
        403,
        "cross-site",
    ),
    "null_origin": (b'{"accept": "all"}', {"origin": "null"}, 403, "cross-site"),
    "sec_fetch_cross_site": (
        b'{"accept": "all"}',
        {"sec-fetch-site": "cross-site"},
        403,
        "cross-site",
    ),
}


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"), list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS)
)
async def test_bad_decisions_are_refused_and_nothing_is_recorded(
    client: httpx.AsyncClient,
    store: SQLiteStore,
    body: bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = await client.post(
        "/_consent/decision",
        content=body,
        headers={"content-type": "application/json", **ORIGIN, **headers},
    )
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert "set-cookie" not in response.headers
    assert await store.count() == 0


async def test_refusing_a_necessary_service_is_an_error(
    settings_data: Data, store: SQLiteStore, necessary_service: dict[str, Any]
) -> None:
    data = settings_data()
    data["services"]["session"] = necessary_service
    transport = httpx.ASGITransport(app=make_app(Settings.from_mapping(data), store))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        refused = await decide(c, {"services": {"session": False}})
        assert refused.status_code == 422 and "necessary" in refused.json()["error"]
        accepted = await decide(c, {"services": {"session": True}})
        assert accepted.json()["granted"] == [] and accepted.json()["action"] == "reject-all"
    assert await store.count() == 1


async def test_tampered_cookie_is_ignored(client: httpx.AsyncClient) -> None:
    response = await decide(client, {"services": {"matomo": True}})
    value = response.cookies["consentgate"]
    client.cookies.clear()
    forged = value.replace(value.split(".")[0], value.split(".")[0][:-2] + "xx")
    client.cookies.set("consentgate", forged)
    assert (await client.get("/")).json()["decided"] is False
    assert (await client.get("/_consent/state")).json()["granted"] == []


async def cookie_from(app: ConsentMiddleware, body: Any) -> str:
    """Return the consent cookie ``app`` sets for a decision."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        return (await decide(c, body)).cookies["consentgate"]


async def decided_with(app: ConsentMiddleware, cookie: str) -> bool:
    """Return whether ``app`` sees a decision behind ``cookie``."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        c.cookies.set("consentgate", cookie)
        decided: bool = (await c.get("/")).json()["decided"]
        return decided


async def test_stale_revision_cookie_is_ignored(settings_data: Data, store: SQLiteStore) -> None:
    old = make_app(Settings.from_mapping(settings_data(revision=1)), store)
    new = make_app(Settings.from_mapping(settings_data(revision=2)), store)
    value = await cookie_from(old, {"accept": "all"})
    assert await decided_with(old, value)
    assert not await decided_with(new, value)


async def test_rotated_key_keeps_existing_decisions(
    settings_data: Data, store: SQLiteStore
) -> None:
    old = make_app(Settings.from_mapping(settings_data(secret_keys=["o" * 40])), store)
    rotated = Settings.from_mapping(settings_data(secret_keys=["n" * 40, "o" * 40]))
    value = await cookie_from(old, {"accept": "all"})
    assert await decided_with(make_app(rotated, store), value)


async def test_store_down_spools_the_decision_and_still_sets_the_cookie(
    settings_data: Data, tmp_path: Any
) -> None:
    spool = tmp_path / "spool"
    settings = Settings.from_mapping(settings_data(ledger={"spool_directory": str(spool)}))
    ledger = SQLiteStore(tmp_path / "down.db")
    app = make_app(settings, ledger)
    await ledger.close()  # every append now fails
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        response = await decide(c, {"accept": "all"})
        assert response.status_code == 200
        receipt = response.json()
        assert (receipt["stored"], receipt["hash"]) == (False, None)
        assert response.headers["set-cookie"].startswith("consentgate=")
        health = (await c.get("/_consent/health")).json()
    assert health["status"] == "degraded" and health["spool"]["depth"] == 1
    back = SQLiteStore(tmp_path / "down.db")
    try:
        report = await app.ledger.spool.replay(back)
        assert report.replayed == 1
        [record] = await back.records_for(receipt["consent_id"])
        assert record.record_id == receipt["record_id"] and record.action == "accept-all"
    finally:
        await back.close()


async def test_store_and_spool_down_gives_503_no_cookie(settings_data: Data, tmp_path: Any) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings = Settings.from_mapping(
        settings_data(ledger={"spool_directory": str(blocker / "spool")})
    )
    ledger = SQLiteStore(tmp_path / "down.db")
    app = make_app(settings, ledger)
    await ledger.close()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        response = await decide(c, {"accept": "all"})
    assert response.status_code == 503
    assert "nothing was recorded" in response.json()["error"]
    assert "set-cookie" not in response.headers
    assert await SQLiteStore(tmp_path / "down.db").count() == 0


async def test_secure_cookie_on_https_and_when_forced(
    settings_data: Data, store: SQLiteStore
) -> None:
    auto = make_app(Settings.from_mapping(settings_data()), store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=auto), base_url="https://testserver"
    ) as c:
        response = await decide(c, {"accept": "none"}, origin="https://testserver")
        assert "; Secure" in response.headers["set-cookie"]
    forced = make_app(
        Settings.from_mapping(settings_data(cookie={"secure": True, "domain": "example.de"})), store
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=forced), base_url="http://testserver"
    ) as c:
        cookie = (await decide(c, {"accept": "none"})).headers["set-cookie"]
        assert "; Secure" in cookie and "Domain=example.de" in cookie


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/_consent/decision", 405),
        ("POST", "/_consent/state", 405),
        ("GET", "/_consent/nope", 404),
        ("GET", "/_consent", 404),
    ],
)
async def test_wrong_method_or_path_under_prefix(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert "error" in response.json()


async def test_custom_prefix(settings_data: Data, store: SQLiteStore) -> None:
    app = make_app(Settings.from_mapping(settings_data(prefix="/datenschutz/consent")), store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        assert (await c.get("/datenschutz/consent/state")).status_code == 200
        assert (await c.get("/_consent/state")).status_code == 404


async def test_decision_time_comes_from_the_clock(settings: Settings, store: SQLiteStore) -> None:
    moment = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    app = ConsentMiddleware(
        Starlette(routes=[Route("/", whoami)]), settings=settings, store=store, clock=lambda: moment
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        receipt = (await decide(c, {"accept": "all"})).json()
        assert receipt["time"] == "2026-11-21T09:30:00.000000Z"
        assert (await c.get("/_consent/state")).json()["decided_at"] == "2026-11-21T09:30:00+00:00"
