"""The DPO's HTTP endpoints, the visitor's own history and the health endpoint."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from consentgate.config import Settings
from consentgate.consent.record import ConsentRecord
from consentgate.consent.sqlite import SQLiteStore
from consentgate.middleware import ConsentMiddleware

Data = Callable[..., dict[str, Any]]
TOKEN = "t0ken-" + "x" * 40
ORIGIN = {"origin": "http://testserver"}


async def page(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


def make_app(
    settings_data: Data, store: SQLiteStore, tmp_path: Path, **changes: Any
) -> ConsentMiddleware:
    data = settings_data(ledger={"spool_directory": str(tmp_path / "spool")}, **changes)
    inner = Starlette(routes=[Route("/", page)])
    return ConsentMiddleware(inner, settings=Settings.from_mapping(data), store=store)


@pytest.fixture
async def app(
    settings_data: Data, store: SQLiteStore, tmp_path: Path
) -> AsyncIterator[ConsentMiddleware]:
    middleware = make_app(settings_data, store, tmp_path, dpo={"token": TOKEN})
    yield middleware
    await middleware.ledger.stop()


@pytest.fixture
async def client(app: ConsentMiddleware) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.77", 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def visitors(app: ConsentMiddleware, count: int) -> list[dict[str, Any]]:
    """Let ``count`` visitors decide (each their own client, so their own cookie)."""
    receipts = []
    for n in range(count):
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n}", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            body = {"accept": "all"} if n % 2 else {"services": {"matomo": True}}
            response = await c.post(
                "/_consent/decision",
                json={**body, "page": "http://testserver/strom"},
                headers=ORIGIN,
            )
            assert response.status_code == 200
            receipts.append(response.json())
    return receipts


@pytest.mark.parametrize(
    "path", ["/_consent/dpo/export", "/_consent/dpo/verify", "/_consent/dpo/stats"]
)
async def test_dpo_endpoints_need_the_token(client: httpx.AsyncClient, path: str) -> None:
    for headers in ({}, bearer("wrong-" + "x" * 40), {"authorization": f"Basic {TOKEN}"}):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in response.text
    assert (await client.get(path, headers=bearer())).status_code == 200


async def test_dpo_endpoints_are_off_without_a_token(
    settings_data: Data, store: SQLiteStore, tmp_path: Path
) -> None:
    app = make_app(settings_data, store, tmp_path)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        response = await c.get("/_consent/dpo/verify", headers=bearer())
    assert response.status_code == 404
    assert "[dpo] token" in response.json()["error"]


def test_short_token_is_refused_without_echoing_it(settings_data: Data) -> None:
    with pytest.raises(Exception, match="too short") as caught:
        Settings.from_mapping(settings_data(dpo={"token": "hunter2"}))
    assert "hunter2" not in str(caught.value)


async def test_dpo_export_streams_csv_and_jsonl(
    app: ConsentMiddleware, client: httpx.AsyncClient, store: SQLiteStore
) -> None:
    receipts = await visitors(app, 5)
    response = await client.get("/_consent/dpo/export?format=jsonl", headers=bearer())
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["record_id"] for line in lines] == [r["record_id"] for r in receipts]
    assert all(ConsentRecord.from_json(line).computed_hash() == line["hash"] for line in lines)

    response = await client.get("/_consent/dpo/export?format=csv", headers=bearer())
    assert response.content.startswith(b"\xef\xbb\xbf"), "BOM for Excel"
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))
    # A random id starting with "-" gets the formula guard's apostrophe (Excel hides it).
    first_id = receipts[0]["consent_id"]
    guarded = "'" + first_id if first_id[0] in "=+-@" else first_id
    assert len(rows) == 5 and rows[0]["consent_id"] == guarded

    one = receipts[2]["consent_id"]
    response = await client.get(f"/_consent/dpo/export?consent_id={one}", headers=bearer())
    assert [json.loads(x)["consent_id"] for x in response.text.splitlines()] == [one]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("format=xlsx", "format"),
        ("service=nope", "service"),
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
    ],
)
async def test_dpo_export_refuses_bad_parameters(
    client: httpx.AsyncClient, query: str, field: str
) -> None:
    response = await client.get(f"/_consent/dpo/export?{query}", headers=bearer())
    assert response.status_code == 422
    assert response.json()["field"] == field


async def test_dpo_verify_names_the_broken_record(
    app: ConsentMiddleware, client: httpx.AsyncClient, store: SQLiteStore
) -> None:
    await visitors(app, 4)
    verdict = (await client.get("/_consent/dpo/verify", headers=bearer())).json()
    assert verdict["ok"] is True and verdict["checked"] == 4
    db = sqlite3.connect(store.path)
    with db:
        db.execute(
            "UPDATE records SET body = replace(body, 'accept-all', 'reject-all') WHERE seq = 2"
        )
    db.close()
    verdict = (await client.get("/_consent/dpo/verify", headers=bearer())).json()
    assert verdict["ok"] is False
    assert "seq 2" in verdict["first_problem"] and "altered" in verdict["first_problem"]


async def test_dpo_stats_per_day(app: ConsentMiddleware, client: httpx.AsyncClient) -> None:
    await visitors(app, 4)
    stats = (await client.get("/_consent/dpo/stats?by=day", headers=bearer())).json()
    assert stats["totals"]["records"] == 4
    matomo = stats["services"]["matomo"]
    assert (matomo["granted"], matomo["offered"], matomo["opt_in_rate"]) == (4, 4, 1.0)
    youtube = stats["services"]["youtube"]
    assert (youtube["granted"], youtube["offered"]) == (2, 4)
    assert youtube["category"] == "external_media"
    assert len(stats["periods"]) == 1
    bad = await client.get("/_consent/dpo/stats?by=year", headers=bearer())
    assert bad.status_code == 422 and bad.json()["field"] == "by"


async def test_history_returns_only_the_visitors_own_records(
    app: ConsentMiddleware, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/_consent/history")).status_code == 404, "no cookie, no records"
    others = await visitors(app, 3)
    first = await client.post("/_consent/decision", json={"accept": "all"}, headers=ORIGIN)
    second = await client.post("/_consent/decision", json={"accept": "none"}, headers=ORIGIN)
    history = (await client.get("/_consent/history")).json()
    assert history["consent_id"] == first.json()["consent_id"]
    assert [r["record_id"] for r in history["records"]] == [
        first.json()["record_id"],
        second.json()["record_id"],
    ]
    assert [r["action"] for r in history["records"]] == ["accept-all", "withdraw"]
    assert history["records"][0]["ip"] == "203.0.113.0", "their own (masked) data"
    assert not {o["consent_id"] for o in others} & {r["consent_id"] for r in history["records"]}
    client.cookies.set("consentgate", "forged.value")
    response = await client.get("/_consent/history")
    assert response.status_code == 404


async def test_health_reports_store_spool_and_access_log(
    settings_data: Data, store: SQLiteStore, tmp_path: Path
) -> None:
    app = make_app(settings_data, store, tmp_path, access_log={"directory": str(tmp_path / "logs")})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        await c.get("/")
        health = (await c.get("/_consent/health")).json()
    await app.ledger.stop()
    assert health["status"] == "ok" and health["store"] == "ok"
    assert health["spool"]["depth"] == 0
    assert set(health["access_log"]) == {"written", "dropped", "queued", "last_error"}
    assert health["access_log"]["dropped"] == 0
