"""Fill a consent ledger with many realistic, correctly chained records (for benchmarks).

``fill_sqlite(path, n)`` appends ``n`` records to the SQLite ledger at ``path`` (created if
missing) through the store protocol's ``append_many``, in batches of 5000, so every record
is sealed and chained exactly as the app would store it. The records are drawn from a
fixed seed: about one consent id per two records, the four actions, a realistic service
set, German page URLs (some with umlauts), one decision every few seconds from
``START`` on (1,000,000 records span about two months).

Run as ``python -m bench.ledger_fill PATH N`` to fill a file from the shell.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from consentgate.consent.record import Action, RecordDraft
from consentgate.consent.sqlite import SQLiteStore
from consentgate.consent.store import Store

#: When the first record of a fresh fill was made.
START = datetime(2026, 9, 1, tzinfo=UTC)
#: Records per ``append_many`` call (one transaction each).
BATCH = 5000
SERVICES = ("matomo", "google_analytics", "facebook_pixel", "youtube", "google_maps")
PAGES = (
    "https://www.stadtwerke-beispiel.de/",
    "https://www.stadtwerke-beispiel.de/strom",
    "https://www.stadtwerke-beispiel.de/gas/tarife",
    "https://www.stadtwerke-beispiel.de/kontakt",
    "https://www.stadtwerke-beispiel.de/über-uns",
    "https://www.stadtwerke-beispiel.de/störungsmeldung",
)
BROWSERS = ("Firefox 133", "Chrome 131", "Safari 18", "Edge 131", "Samsung Internet 26")
SYSTEMS = ("Windows", "macOS", "Android", "iOS", "Linux")


def drafts(n: int, *, seed: int = 1, start: datetime = START) -> Iterator[RecordDraft]:
    """Yield ``n`` realistic drafts in time order (deterministic for a seed)."""
    rng = random.Random(seed)
    moment = start
    ids: list[str] = []
    for number in range(n):
        moment += timedelta(microseconds=rng.randrange(1, 10_000_000))
        # Every other decision is by a returning visitor (changed their mind, new revision).
        if ids and rng.random() < 0.5:
            consent_id = ids[rng.randrange(len(ids))]
        else:
            consent_id = f"{rng.getrandbits(128):032x}"[:22]
            ids.append(consent_id)
        roll = rng.random()
        action: Action
        granted: tuple[str, ...]
        if roll < 0.55:
            action, granted = "accept-all", SERVICES
        elif roll < 0.80:
            action, granted = "reject-all", ()
        elif roll < 0.97:
            action = "custom"
            granted = tuple(s for s in SERVICES if rng.random() < 0.4)
        else:
            action, granted = "withdraw", ()
        yield RecordDraft(
            consent_id=consent_id,
            time=moment,
            action=action,
            granted=granted,
            refused=tuple(s for s in SERVICES if s not in granted),
            revision=1 + number * 3 // max(n, 1),
            fingerprint=f"{rng.getrandbits(256):064x}" if number % 1000 == 0 else "e" * 64,
            language="de" if rng.random() < 0.9 else "en",
            page_url=PAGES[rng.randrange(len(PAGES))],
            ip=f"203.0.{rng.randrange(256)}.0",
            browser=BROWSERS[rng.randrange(len(BROWSERS))],
            os=SYSTEMS[rng.randrange(len(SYSTEMS))],
            record_id=f"{rng.getrandbits(128):032x}",
            salt=f"{rng.getrandbits(128):032x}",
        )


async def fill_store(store: Store, n: int, *, seed: int = 1, start: datetime = START) -> int:
    """Append ``n`` drafts of ``drafts(n)`` to ``store`` in batches; returns ``n``."""
    batch: list[RecordDraft] = []
    for draft in drafts(n, seed=seed, start=start):
        batch.append(draft)
        if len(batch) == BATCH:
            await store.append_many(batch)
            batch = []
    if batch:
        await store.append_many(batch)
    return n


def fill_sqlite(path: str | Path, n: int, *, seed: int = 1, start: datetime = START) -> int:
    """Append ``n`` records to the SQLite ledger at ``path`` (created if missing)."""

    async def fill() -> int:
        store = SQLiteStore(path)
        try:
            return await fill_store(store, n, seed=seed, start=start)
        finally:
            await store.close()

    return asyncio.run(fill())


def main(argv: list[str]) -> None:
    """``python -m bench.ledger_fill PATH N``."""
    path, n = argv[0], int(argv[1])
    began = time.perf_counter()
    fill_sqlite(path, n)
    print(f"appended {n} records to {path} in {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
