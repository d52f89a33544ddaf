"""Faults with real parts: Redis killed mid-stream, the app killed with decisions spooled.

Every acknowledged decision must end up in the store exactly once, in the order made,
and the chains must verify.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from consentgate.config import Settings
from consentgate.consent import Store, open_store
from consentgate.middleware import ConsentMiddleware
from tests.redis_servers import RedisCluster, RedisServer, free_port

Data = Callable[..., dict[str, Any]]
ORIGIN = {"origin": "http://testserver"}
# Each visitor decides three times; the store must keep their order.
ROUNDS = ({"accept": "all"}, {"accept": "none"}, {"services": {"matomo": True}})
EXPECTED_ACTIONS = ["accept-all", "withdraw", "custom"]


async def page(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


class Servers:
    """A single Redis or a cluster behind one interface: kill it, start it again."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.cluster = RedisCluster(directory) if kind == "cluster" else None
        self.single = None if self.cluster else RedisServer(directory)

    def start(self) -> None:
        (self.cluster or self.single).start()  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return (self.cluster or self.single).url  # type: ignore[union-attr]

    def kill(self) -> None:
        if self.cluster:
            self.cluster.kill_all()
        else:
            assert self.single is not None
            self.single.kill()

    def restart(self) -> None:
        if self.cluster:
            self.cluster.restart_all()
        else:
            assert self.single is not None
            self.single.restart()

    def stop(self) -> None:
        (self.cluster or self.single).stop()  # type: ignore[union-attr]


@pytest.fixture(params=["redis", "cluster"])
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    servers = Servers(request.param, tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    servers.start()
    yield servers
    servers.stop()


async def check_ledger(store: Store, receipts: list[dict[str, Any]]) -> None:
    """Every receipt's record is stored once, each visitor's in the order decided; chains ok."""
    assert await store.count() == len(receipts)
    by_visitor: dict[str, list[str]] = {}
    for receipt in receipts:
        by_visitor.setdefault(receipt["consent_id"], []).append(receipt["record_id"])
    for consent_id, record_ids in by_visitor.items():
        stored = await store.records_for(consent_id)
        assert [r.record_id for r in stored] == record_ids
        assert [r.action for r in stored] == EXPECTED_ACTIONS[: len(stored)]
    report = await store.verify()
    assert report.ok, str(report)


async def test_redis_killed_mid_stream_loses_nothing(
    servers: Servers, settings_data: Data, tmp_path: Path
) -> None:
    settings = Settings.from_mapping(
        settings_data(
            store_url=servers.url + "?timeout=0.5",
            ledger={"spool_directory": str(tmp_path / "spool"), "timeout_seconds": 1.0},
        )
    )
    app = ConsentMiddleware(Starlette(routes=[Route("/", page)]), settings=settings)
    visitors = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(f"198.51.100.{n}", 1000)),
            base_url="http://testserver",
        )
        for n in range(12)
    ]
    receipts: list[dict[str, Any]] = []
    stored_directly = 0
    try:
        decision = 0
        for body in ROUNDS:
            for client in visitors:
                if decision == 12:
                    servers.kill()  # in the middle of the second round
                if decision == 26:
                    await asyncio.to_thread(servers.restart)
                response = await client.post("/_consent/decision", json=body, headers=ORIGIN)
                assert response.status_code == 200, response.text
                assert response.headers["set-cookie"].startswith("consentgate=")
                receipt = response.json()
                stored_directly += receipt["stored"]
                receipts.append(receipt)
                decision += 1
        assert stored_directly == 12, "before the kill stored; after it spooled until replayed"
        health = (await visitors[0].get("/_consent/health")).json()
        assert health["status"] == "degraded" and health["spool"]["depth"] == 24
        report = await app.ledger.replay()
        assert report is not None and report.replayed == 24
        health = (await visitors[0].get("/_consent/health")).json()
        assert health["status"] == "ok" and health["spool"]["depth"] == 0
        await check_ledger(app.store, receipts)
    finally:
        for client in visitors:
            await client.aclose()
        await app.ledger.stop()
        await app.store.close()


APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from consentgate.config import Settings
from consentgate.middleware import ConsentMiddleware

async def page(request):
    return PlainTextResponse("ok")

app = ConsentMiddleware(
    Starlette(routes=[Route("/", page)]), settings=Settings.from_file("consentgate.toml")
)
"""


def serve(directory: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--no-access-log"],
        cwd=directory,
        env={**os.environ, "CONSENTGATE_SECRET_KEYS": "s" * 40},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return process
        except httpx.TransportError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    _, err = process.communicate()
    raise RuntimeError(f"uvicorn did not start: {err.decode()[-2000:]}")


async def test_app_killed_with_decisions_spooled_loses_nothing(
    settings_data: Data, tmp_path: Path
) -> None:
    """Store down, decisions spooled, app SIGKILLed; store back, app restarted: all stored."""
    redis = RedisServer(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "consentgate.toml").write_text(
        f'store_url = "{redis.url}?timeout=0.5"\n'
        'services = { matomo = { url = "https://stats.example.de/" }, youtube = {} }\n'
        "[ledger]\n"
        'spool_directory = "spool"\n'
        "timeout_seconds = 1.0\n"
        "replay_interval_seconds = 0.2\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = await asyncio.to_thread(serve, tmp_path, port)
    receipts = []
    try:
        async with httpx.AsyncClient(base_url=base, headers={"origin": base}) as client:
            for n in range(10):
                client.cookies.clear()
                response = await client.post(
                    "/_consent/decision", json={"accept": "all" if n % 2 else "none"}
                )
                assert response.status_code == 200
                assert response.json()["stored"] is False, "the store has not started yet"
                receipts.append(response.json())
    finally:
        app.send_signal(signal.SIGKILL)
        app.communicate()
    await asyncio.to_thread(redis.start)
    app = await asyncio.to_thread(serve, tmp_path, port)
    try:
        deadline = time.monotonic() + 20
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = (await asyncio.to_thread(httpx.get, f"{base}/_consent/health")).json()
            if health["spool"]["depth"] == 0 and health["store"] == "ok":
                break
            await asyncio.sleep(0.2)
        assert health["status"] == "ok", health
        store = open_store(redis.url)
        try:
            assert await store.count() == 10
            stored = [r async for r in store.records()]
            assert sorted(r.record_id for r in stored) == sorted(r["record_id"] for r in receipts)
            assert (await store.verify()).ok
        finally:
            await store.close()
    finally:
        app.terminate()
        app.communicate()
        redis.stop()
