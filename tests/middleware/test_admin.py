"""The DPO dashboard: sign-in, session, escaping, the numbers it shows, export and audit."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from consentgate.config import Settings
from consentgate.consent.sqlite import SQLiteStore
from consentgate.middleware import ConsentMiddleware

Data = Callable[..., dict[str, Any]]
TOKEN = "dpo-t0ken-" + "y" * 40
ORIGIN = {"origin": "http://testserver"}
ADMIN = "/_consent/admin/"
EVIL = '<script>alert("x")</script>'


class Clock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def page(request: Request) -> HTMLResponse:
    body = "<!doctype html><html><head><title>t</title></head><body><h1>Kontakt</h1>"
    if request.url.path == "/kontakt":
        body += '<script src="https://cdn.example.net/widget.js"></script>'
    return HTMLResponse(body + "</body></html>", headers={"set-cookie": "session=1; Path=/"})


def make_app(
    settings_data: Data,
    store: SQLiteStore,
    tmp_path: Path,
    *,
    clock: Clock | None = None,
    **changes: Any,
) -> ConsentMiddleware:
    data = settings_data(ledger={"spool_directory": str(tmp_path / "spool")}, **changes)
    inner = Starlette(
        routes=[Route("/", lambda r: PlainTextResponse("ok")), Route("/kontakt", page)]
    )
    settings = Settings.from_mapping(data)
    if clock is None:
        return ConsentMiddleware(inner, settings=settings, store=store)
    return ConsentMiddleware(inner, settings=settings, store=store, clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(
    settings_data: Data, store: SQLiteStore, tmp_path: Path, clock: Clock
) -> AsyncIterator[ConsentMiddleware]:
    middleware = make_app(settings_data, store, tmp_path, clock=clock, dpo={"token": TOKEN})
    yield middleware
    await middleware.ledger.stop()


def client_of(app: ConsentMiddleware, host: str = "203.0.113.77") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 4711))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(app: ConsentMiddleware) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app) as c:
        yield c


async def sign_in(client: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    return await client.post(ADMIN + "login", data={"token": token, "lang": "de"}, headers=ORIGIN)


async def decide(app: ConsentMiddleware, bodies: list[dict[str, Any]]) -> None:
    for n, body in enumerate(bodies):
        async with client_of(app, f"198.51.100.{n}") as c:
            response = await c.post("/_consent/decision", json=body, headers=ORIGIN)
            assert response.status_code == 200, response.text


def text_of(html: str) -> str:
    """The page's text without tags, whitespace collapsed (what a screen reader reads)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# -- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"authorization": "Bearer wrong-" + "x" * 40}, id="wrong-token"),
        pytest.param({"authorization": f"Basic {TOKEN}"}, id="basic-scheme"),
    ],
)
async def test_dashboard_without_a_valid_token_is_401_with_a_login_form(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(ADMIN, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert 'name="token"' in response.text and 'type="password"' in response.text
    assert '<label for="token">' in response.text
    assert TOKEN not in response.text
    assert "Opt-in" not in response.text


async def test_dashboard_with_the_bearer_token_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get(ADMIN, headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", [ADMIN, ADMIN + "export", ADMIN + "nothing"])
async def test_dashboard_is_off_without_a_dpo_token(
    settings_data: Data, store: SQLiteStore, tmp_path: Path, path: str
) -> None:
    app = make_app(settings_data, store, tmp_path)
    async with client_of(app) as client:
        response = await client.get(path)
    assert response.status_code == 404
    assert "[dpo] token" in response.json()["error"]


async def test_wrong_token_in_the_form_is_refused_and_sets_no_session(
    client: httpx.AsyncClient,
) -> None:
    response = await sign_in(client, "wrong-" + "z" * 40)
    assert response.status_code == 401
    assert "Das Token ist falsch." in response.text
    assert "set-cookie" not in response.headers
    assert (await client.get(ADMIN)).status_code == 401


async def test_signing_in_opens_a_strict_short_session(client: httpx.AsyncClient) -> None:
    response = await sign_in(client)
    assert response.status_code == 303
    assert response.headers["location"] == ADMIN + "?lang=de"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("consentgate_dpo=")
    for attribute in ("HttpOnly", "SameSite=Strict", f"Path={ADMIN}", "Max-Age=1800"):
        assert attribute in cookie
    assert TOKEN not in cookie
    page = await client.get(ADMIN)
    assert page.status_code == 200
    assert "Kennzahlen" in page.text


async def test_session_expires_after_thirty_minutes(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    await sign_in(client)
    clock.now += timedelta(minutes=29)
    assert (await client.get(ADMIN)).status_code == 200
    clock.now += timedelta(minutes=2)
    response = await client.get(ADMIN)
    assert response.status_code == 401
    assert "abgelaufen" in response.text


async def test_a_new_token_ends_old_sessions(
    settings_data: Data, store: SQLiteStore, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    await sign_in(client)
    session = client.cookies["consentgate_dpo"]
    rotated = make_app(settings_data, store, tmp_path, dpo={"token": "new-" + "n" * 40})
    async with client_of(rotated) as other:
        other.cookies.set("consentgate_dpo", session)
        assert (await other.get(ADMIN)).status_code == 401


async def test_forged_session_cookie_is_refused(client: httpx.AsyncClient) -> None:
    await sign_in(client)
    value = client.cookies["consentgate_dpo"]
    client.cookies.set("consentgate_dpo", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert (await client.get(ADMIN)).status_code == 401


@pytest.mark.parametrize("path", ["login", "logout", "verify", "audit/clear"])
async def test_cross_site_posts_are_refused(client: httpx.AsyncClient, path: str) -> None:
    await sign_in(client)
    response = await client.post(
        ADMIN + path, data={"token": TOKEN}, headers={"origin": "https://evil.example"}
    )
    assert response.status_code == 403


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    await sign_in(client)
    response = await client.post(ADMIN + "logout", data={"lang": "en"}, headers=ORIGIN)
    assert response.status_code == 303
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert (await client.get(ADMIN)).status_code == 401


@pytest.mark.parametrize("path", ["verify", "audit/clear"])
async def test_actions_need_a_session(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.post(ADMIN + path, headers=ORIGIN)).status_code == 401


async def test_admin_without_slash_redirects(client: httpx.AsyncClient) -> None:
    response = await client.get("/_consent/admin")
    assert response.status_code == 308
    assert response.headers["location"] == ADMIN
    response = await client.get("/_consent/admin?range=90&lang=en")
    assert response.headers["location"] == ADMIN + "?range=90&lang=en"


async def test_unknown_range_names_the_field(client: httpx.AsyncClient) -> None:
    await sign_in(client)
    response = await client.get(ADMIN, params={"range": "7"})
    assert response.status_code == 422
    assert response.json()["field"] == "range"


# -- what it shows -----------------------------------------------------------------------------


async def test_dashboard_shows_decisions_rates_and_ledger_state(
    app: ConsentMiddleware, client: httpx.AsyncClient
) -> None:
    await decide(
        app,
        [
            {"accept": "all"},
            {"accept": "none"},
            {"accept": "none"},
            {"services": {"matomo": True}},
        ],
    )
    await sign_in(client)
    html = (await client.get(ADMIN)).text
    text = text_of(html)
    assert "Entscheidungen 4" in text
    assert "Anteil „Alle ablehnen“ 50,0 %" in text
    assert "Anteil „Alle akzeptieren“ 25,0 %" in text
    assert "Warteschlange (Spool) leer" in text
    assert "Hash-Kette intakt" in text and "4 Datensätze geprüft" in text
    # today's row of the decisions table: accept-all, custom, reject-all, withdraw
    assert re.search(
        r'<th scope="row">2026-11-21</th><td class="n">1</td><td class="n">1</td>'
        r'<td class="n">2</td><td class="n">0</td>',
        html,
    )
    # Matomo: granted twice (accept all, custom) of four offers
    assert re.search(
        r'<th scope="row">Matomo[^<]*</th><td>[^<]*</td><td class="n">2</td>'
        r'<td class="n">4</td><td class="n">50,0 %</td>',
        html,
    )
    assert html.count("<svg") == 4  # decisions, shares, services, categories
    assert "2026-10-23" in html  # the 30-day range starts 29 days back


async def test_dashboard_speaks_english(app: ConsentMiddleware, client: httpx.AsyncClient) -> None:
    await decide(app, [{"accept": "none"}])
    await sign_in(client)
    html = (await client.get(ADMIN, params={"lang": "en", "range": "365"})).text
    assert '<html lang="en">' in html
    assert "Share of “reject all” 100.0 %" in text_of(html)
    assert "2026-W47" in html  # weekly for a year
    # every week of the year is on the axis, with or without decisions
    assert '<th scope="row">2025-W47</th>' in html and '<th scope="row">2026-W01</th>' in html
    assert html.count('<th scope="row">20') >= 53 * 3  # decisions, services, categories


async def test_names_from_the_settings_and_audit_are_escaped(
    settings_data: Data, store: SQLiteStore, tmp_path: Path
) -> None:
    services = settings_data()["services"]
    services["matomo"] = {**services["matomo"], "name": EVIL}
    app = make_app(settings_data, store, tmp_path, services=services, dpo={"token": TOKEN})
    await decide(app, [{"accept": "all"}])
    app.audit.record("/<img src=x onerror=alert(1)>", hosts={"evil.example"})
    async with client_of(app) as client:
        await sign_in(client)
        html = (await client.get(ADMIN)).text
    await app.ledger.stop()
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


async def test_audit_findings_show_and_can_be_cleared(
    app: ConsentMiddleware, client: httpx.AsyncClient
) -> None:
    async with client_of(app) as visitor:
        assert (await visitor.get("/kontakt")).status_code == 200
    await sign_in(client)
    text = text_of((await client.get(ADMIN)).text)
    assert "unbekannter Dienst: cdn.example.net auf /kontakt (1× gesehen" in text
    assert "unbekanntes Cookie: session auf /kontakt" in text
    response = await client.post(ADMIN + "audit/clear", data={"lang": "de"}, headers=ORIGIN)
    assert response.status_code == 303
    text = text_of((await client.get(ADMIN)).text)
    assert "Keine unbekannten Dienste oder Cookies gesehen." in text


async def test_verify_button_reports_a_broken_chain(
    app: ConsentMiddleware, client: httpx.AsyncClient, store: SQLiteStore
) -> None:
    await decide(app, [{"accept": "all"}, {"accept": "none"}])
    await sign_in(client)
    assert "Hash-Kette intakt" in text_of((await client.get(ADMIN)).text)
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE records SET body = replace(body, 'reject-all', 'accept-all')")
    # the check shown is the last one run, until the button runs another
    assert "Hash-Kette intakt" in text_of((await client.get(ADMIN)).text)
    response = await client.post(ADMIN + "verify", data={"range": "90"}, headers=ORIGIN)
    assert response.status_code == 303
    assert response.headers["location"].endswith("range=90#chain")
    text = text_of((await client.get(ADMIN)).text)
    assert "Hash-Kette beschädigt" in text
    assert "Erstes Problem" in text


async def test_export_button_downloads_the_records(
    app: ConsentMiddleware, client: httpx.AsyncClient
) -> None:
    await decide(app, [{"accept": "all"}, {"accept": "none"}])
    assert (await client.get(ADMIN + "export", params={"format": "csv"})).status_code == 401
    await sign_in(client)
    html = (await client.get(ADMIN)).text
    assert f'<form class="inline" method="get" action="{ADMIN}export">' in html
    response = await client.get(
        ADMIN + "export", params={"format": "csv", "since": "", "until": ""}
    )
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    lines = response.content.decode("utf-8-sig").strip().splitlines()
    assert len(lines) == 3  # header and two records
    bad = await client.get(ADMIN + "export", params={"format": "xml"})
    assert bad.status_code == 422 and bad.json()["field"] == "format"


async def test_log_retention_status_names_overdue_files(
    settings_data: Data, store: SQLiteStore, tmp_path: Path, clock: Clock
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for day in ("2026-08-23", "2026-11-20"):  # 90 days before today, and yesterday
        (logs / f"access-{day}.log").write_text("x\n")
    app = make_app(
        settings_data,
        store,
        tmp_path,
        clock=clock,
        dpo={"token": TOKEN},
        access_log={"directory": str(logs), "retention_days": 90},
    )
    async with client_of(app) as client:
        await sign_in(client)
        assert "ältestes vom 2026-08-23" in text_of((await client.get(ADMIN)).text)
        (logs / "access-2026-08-22.log").write_text("x\n")
        text = text_of((await client.get(ADMIN)).text)
    await app.ledger.stop()
    assert "1 Datei(en) älter als 90 Tage" in text


async def test_store_down_shows_unreachable_not_an_error(
    app: ConsentMiddleware, client: httpx.AsyncClient, store: SQLiteStore
) -> None:
    await sign_in(client)
    await store.close()
    response = await client.get(ADMIN)
    assert response.status_code == 200
    assert "Speicher nicht erreichbar" in text_of(response.text)


async def test_figures_are_reused_for_a_minute_and_say_when_they_were_computed(
    app: ConsentMiddleware, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await decide(app, [{"accept": "all"}])
    await sign_in(client)
    text = text_of((await client.get(ADMIN)).text)
    assert "Entscheidungen 1" in text
    assert "Zahlen vom 2026-11-21 10:00 UTC" in text
    await decide(app, [{"accept": "none"}])
    assert "Entscheidungen 1" in text_of((await client.get(ADMIN)).text)
    # Another period is computed on its own; the cached one expires after STATS_SECONDS.
    assert "Decisions 2" in text_of(
        (await client.get(ADMIN, params={"lang": "en", "range": "90"})).text
    )
    monkeypatch.setattr("consentgate.middleware.admin.STATS_SECONDS", 0.0)
    assert "Entscheidungen 2" in text_of((await client.get(ADMIN)).text)
