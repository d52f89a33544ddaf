"""What the DPO dashboard costs on a large ledger, against the statistics it is built on.

The dashboard page reads the ledger once per request (``compute_stats`` over the chosen
period) and renders HTML and SVG from the result. This measures, in the same run, on one
SQLite ledger of ``--records`` records (default 200,000, about two weeks of decisions):

- ``compute_stats`` alone for the last 30 days by day, and for everything by month: the
  floor any dashboard must pay;
- the whole ``GET {prefix}/admin/`` (token in the header) for the same two periods, through
  ``ConsentMiddleware`` in process (no network): the ratio to the floor is the cost of the
  page itself (rendering, audit flush, health, chain status);
- the cookie declaration, generated once and then served from memory.

Run ``python -m bench.dashboard [--records N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from bench.ledger_fill import START, drafts, fill_store
from consentgate.config import Settings, preset_ids
from consentgate.consent.export import Period, compute_stats
from consentgate.consent.sqlite import SQLiteStore
from consentgate.middleware import ConsentMiddleware
from consentgate.widgets import render_declaration

TOKEN = "bench-dashboard-token-" + "b" * 32


def settings(spool: Path) -> Settings:
    services = {
        s: ({"url": "https://stats.example.de/"} if s == "matomo" else {}) for s in preset_ids()
    }
    return Settings.from_mapping(
        {
            "secret_keys": ["k" * 40],
            "services": services,
            "dpo": {"token": TOKEN},
            "ledger": {"spool_directory": str(spool)},
        }
    )


async def fill_store_at(path: Path, records: int) -> None:
    store = SQLiteStore(path)
    try:
        await fill_store(store, records)
    finally:
        await store.close()


async def best(rounds: int, work: Callable[[], Awaitable[object]]) -> float:
    """Return the median of ``rounds`` timings of ``work`` (seconds)."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        await work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


async def run(records: int, rounds: int, folder: Path) -> None:
    path = folder / "ledger.db"
    began = time.perf_counter()
    await fill_store_at(path, records)
    print(f"filled {records:,} records in {time.perf_counter() - began:.1f} s")
    last = START
    for draft in drafts(records):
        last = draft.time
    store = SQLiteStore(path)
    config = settings(folder / "spool")
    app = ConsentMiddleware(
        lambda scope, receive, send: None,  # type: ignore[arg-type,return-value]
        settings=config,
        store=store,
        clock=lambda: last,
    )
    app.endpoints.admin.chain = None
    since = (last - timedelta(days=29)).replace(hour=0, minute=0, second=0, microsecond=0)
    categories = {s.id: s.category for s in config.services.values()}
    transport = httpx.ASGITransport(app=app)
    headers = {"authorization": f"Bearer {TOKEN}"}
    rows = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        # The first page load checks the chain when the ledger is small enough; take it
        # out of the comparison by loading once.
        first = await client.get("/_consent/admin/", headers=headers)
        assert first.status_code == 200, first.text[:200]
        periods: tuple[tuple[str, str, Period, datetime | None], ...] = (
            ("last 30 days, by day", "30", "day", since),
            ("everything, by month", "all", "month", None),
        )
        for label, range_key, by, window in periods:

            async def stats(by: Period = by, window: datetime | None = window) -> None:
                await compute_stats(store, since=window, by=by, categories=categories)

            floor = await best(rounds, stats)

            async def page(range_key: str = range_key) -> None:
                response = await client.get(
                    "/_consent/admin/", params={"range": range_key}, headers=headers
                )
                assert response.status_code == 200

            whole = await best(rounds, page)
            rows.append((label, floor, whole))
    await app.ledger.stop()
    await store.close()

    began = time.perf_counter()
    declaration = render_declaration(config, "de", "html")
    generate = time.perf_counter() - began

    print()
    print(f"Dashboard on {records:,} records (median of {rounds}):")
    print("| period | compute_stats alone | whole page | page / stats |")
    print("|---|---|---|---|")
    for label, floor, whole in rows:
        print(
            f"| {label} | {floor * 1000:,.0f} ms | {whole * 1000:,.0f} ms | {whole / floor:.2f}× |"
        )
    print(
        f"\nCookie declaration (de, html, all 8 presets): {len(declaration.text):,} characters, "
        f"generated in {generate * 1000:.1f} ms, then served from memory."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="consentgate-bench-") as folder:
        asyncio.run(run(args.records, args.rounds, Path(folder)))


if __name__ == "__main__":
    main()
