"""The processes ``bench.ledger`` runs: the app uvicorn serves and the raw store loops.

``bench.ledger_apps:decisions`` (run uvicorn with ``--factory``) is a tiny Starlette app
(``GET /json``) inside ``ConsentMiddleware``, whose settings (``store_url``, ``[ledger]
spool_directory``) come from the JSON file named by ``CONSENTGATE_BENCH_SETTINGS``, inside a
counter of the decision answers: ``GET /_bench/stats`` returns how many ``POST
{prefix}/decision`` were answered 2xx and how many otherwise, so the benchmark can check
the ledger holds exactly one record per 2xx answer.

``python -m bench.ledger_apps sqlite PATH SECONDS`` and ``... redis URL SECONDS`` are the
baselines: one process storing rows of the size of the record a decision stores, one
after another, for ``SECONDS``; they print ``{"count": n, "seconds": s}``. SQLite: the
ledger's schema in WAL mode with ``synchronous=FULL``, one transaction per row. Redis: one
coroutine awaiting ``XADD`` of an entry with the record's ``body``, ``hash`` and
``personal`` one after another.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from datetime import UTC, datetime

import redis.asyncio
from redis.typing import EncodableT, FieldT
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.e2e_apps import load_settings
from bench.page import json_body
from consentgate.config import Settings
from consentgate.consent import new_consent_id
from consentgate.consent.record import ConsentRecord, RecordDraft, StoredRecord
from consentgate.consent.sqlite import SCHEMA
from consentgate.middleware import ConsentMiddleware
from consentgate.middleware.ipmask import mask_ip
from consentgate.middleware.useragent import reduce_user_agent

#: The route answering the decision counters.
STATS_PATH = "/_bench/stats"
#: What wrk sends with every decision (a browser's headers, so the record is realistic).
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
REFERER = "https://www.stadtwerke-musterstadt.de/privatkunden/strom/tarife"
DECISION_BODY = '{"accept":"all"}'
#: The stream the raw Redis loop appends to (apart from the ledger's keys).
RAW_STREAM = "bench:raw-xadd"


class DecisionCounter:
    """Counts the answers to ``POST {prefix}/decision``; answers ``GET /_bench/stats``."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.decision_path = prefix + "/decision"
        self.ok = 0
        self.failed = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.decision_path:
            if scope["type"] == "http" and scope["path"] == STATS_PATH:
                answer = JSONResponse({"ok": self.ok, "failed": self.failed})
                await answer(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                if 200 <= message["status"] < 300:
                    self.ok += 1
                else:
                    self.failed += 1
            await send(message)

        await self.app(scope, receive, counted)


async def _json_route(request: Request) -> Response:
    return Response(json_body(), media_type="application/json")


def decisions() -> ASGIApp:
    """Return the tiny app inside ``ConsentMiddleware`` and the counter (uvicorn ``--factory``)."""
    settings = load_settings()
    app = Starlette(routes=[Route("/json", _json_route)])
    return DecisionCounter(ConsentMiddleware(app, settings=settings), settings.prefix)


def bare() -> ASGIApp:
    """Return the ceiling: the tiny app answering the decision route itself, no ledger.

    It reads the body and answers a receipt of the real one's size with a cookie, so what
    remains of a request is uvicorn, h11 and Starlette's routing.
    """
    settings = load_settings()
    receipt = {
        "consent_id": "c" * 22,
        "record_id": "r" * 32,
        "action": "accept-all",
        "granted": sorted(settings.optional_service_ids),
        "refused": [],
        "revision": settings.revision,
        "time": "2026-11-21T12:00:00.000000Z",
        "language": settings.default_language,
        "fingerprint": "f" * 64,
        "stored": True,
        "hash": "h" * 64,
    }
    cookie = f"{settings.cookie.name}={'v' * 120}; Max-Age=31536000; Path=/; HttpOnly; SameSite=Lax"

    async def decision_route(request: Request) -> Response:
        await request.body()
        return JSONResponse(receipt, headers={"Cache-Control": "no-store", "Set-Cookie": cookie})

    app = Starlette(
        routes=[
            Route("/json", _json_route),
            Route(settings.prefix + "/decision", decision_route, methods=["POST"]),
        ]
    )
    return DecisionCounter(app, settings.prefix)


def sample_draft(settings: Settings) -> RecordDraft:
    """Return a draft as the endpoint makes of wrk's decision (same field sizes)."""
    browser, os_family = reduce_user_agent(USER_AGENT)
    return RecordDraft(
        consent_id=new_consent_id(),
        time=datetime.now(UTC),
        action="accept-all",
        granted=tuple(sorted(settings.optional_service_ids)),
        refused=(),
        revision=settings.revision,
        fingerprint="f" * 64,
        language=settings.default_language,
        page_url=REFERER,
        ip=mask_ip(
            "127.0.0.1",
            ipv4_prefix=settings.ip.ipv4_prefix,
            ipv6_prefix=settings.ip.ipv6_prefix,
        ),
        browser=browser,
        os=os_family,
    )


def sample_record(settings: Settings) -> StoredRecord:
    """Return the stored form of ``sample_draft``, sealed first on a chain."""
    return ConsentRecord.seal(sample_draft(settings), seq=1, prev_hash="0" * 64).stored()


def record_bytes(stored: StoredRecord) -> tuple[int, int, int]:
    """Return the UTF-8 sizes of a stored record's body, hash and personal fields."""
    personal = stored.personal or ""
    return len(stored.body.encode()), len(stored.hash.encode()), len(personal.encode())


def raw_sqlite(path: str, seconds: float) -> tuple[int, float]:
    """Insert record-sized rows into ``path`` for ``seconds``, one durable commit each."""
    sample = sample_record(load_settings())
    db = sqlite3.connect(path, isolation_level=None)  # autocommit: one transaction per row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    (last,) = db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()
    insert = (
        "INSERT INTO records (seq, record_id, consent_id, time, body, hash, personal) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    body, digest, personal, moment = sample.body, sample.hash, sample.personal, sample.time
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        seq = last + count + 1
        # Ids of the stored lengths (32 hex, 22 characters), unique per row.
        db.execute(insert, (seq, f"{seq:032x}", f"{seq:022d}", moment, body, digest, personal))
        count += 1
    elapsed = time.perf_counter() - started
    db.close()
    return count, elapsed


async def raw_redis(url: str, seconds: float) -> tuple[int, float]:
    """``XADD`` record-sized entries to the server of ``url`` for ``seconds``, one at a time."""
    sample = sample_record(load_settings())
    fields: dict[FieldT, EncodableT] = {
        "body": sample.body,
        "hash": sample.hash,
        "personal": sample.personal or "",
    }
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.ping()
        count = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            await client.xadd(RAW_STREAM, fields)
            count += 1
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
    return count, elapsed


def main(argv: list[str]) -> None:
    """``python -m bench.ledger_apps sqlite|redis TARGET SECONDS``: print the loop's count."""
    kind, target, seconds = argv[0], argv[1], float(argv[2])
    if kind == "sqlite":
        count, elapsed = raw_sqlite(target, seconds)
    elif kind == "redis":
        count, elapsed = asyncio.run(raw_redis(target, seconds))
    else:
        raise SystemExit(f"unknown baseline {kind!r}; use sqlite or redis")
    print(json.dumps({"count": count, "seconds": elapsed}))


if __name__ == "__main__":
    main(sys.argv[1:])
