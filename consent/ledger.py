"""The ledger as a running app uses it: group commit, a bounded wait, the spool, background work.

``Ledger.record`` never loses a decision it acknowledges: it is either in the store or,
if the store is down or slower than ``timeout_seconds``, fsync'd in the spool, from
which the app (every ``replay_interval_seconds``) or ``consentgate spool replay`` stores
it later, in order and exactly once. While anything waits in the spool, new decisions
queue behind it there, so one visitor's decisions reach the store in the order made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread

from consentgate.config import LedgerSettings
from consentgate.consent.record import ConsentRecord, RecordDraft
from consentgate.consent.spool import ReplayReport, Spool, SpoolError
from consentgate.consent.store import PurgeReport, Store, StoreError

logger = logging.getLogger("consentgate")

#: Decisions stored together in one ``append_many`` (one transaction or round trip).
GROUP_COMMIT = 256
#: Replays in a row while new decisions keep arriving in the spool.
MAX_REPLAY_ROUNDS = 10


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a decision went: ``record`` once stored, or spooled (``record is None``)."""

    draft: RecordDraft
    record: ConsentRecord | None

    @property
    def stored(self) -> bool:
        return self.record is not None


class Ledger:
    """Wraps a ``Store`` with group commit, a timeout, the spool and the background sweeps."""

    def __init__(
        self,
        store: Store,
        settings: LedgerSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.spool = Spool(settings.spool_directory)
        self.clock = clock
        self.timeout = settings.timeout_seconds
        self.spooled = 0
        """Decisions this process spooled since it started."""
        self.last_error: str | None = None
        self._queue: list[tuple[RecordDraft, asyncio.Future[ConsentRecord]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._replaying = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Ledger({self.store!r}, spool={str(self.spool.directory)!r})"

    async def record(self, draft: RecordDraft) -> Outcome:
        """Store ``draft``, or spool it if the store fails or is slow; raises ``StoreError``
        only when neither the store nor the spool could keep it."""
        if self.spool.pending():
            await self._spool(draft, "earlier decisions still wait in the spool")
            return Outcome(draft, None)
        future = self._submit(draft)
        try:
            record = await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            try:
                await self._spool(draft, f"the store took longer than {self.timeout:g} s")
            except StoreError:
                return await self._settle(draft, future)
            return Outcome(draft, None)
        except Exception as exc:  # any store failure: the spool keeps the decision
            await self._spool(draft, f"the store failed: {exc}")
            return Outcome(draft, None)
        return Outcome(draft, record)

    async def _settle(self, draft: RecordDraft, future: asyncio.Future[ConsentRecord]) -> Outcome:
        """The store stalled and the spool failed: make sure the answer tells the truth."""
        for index, (queued, _) in enumerate(self._queue):
            if queued is draft:  # not written yet: withdraw it, nothing is recorded
                del self._queue[index]
                future.cancel()
                raise StoreError("the store stalled and the spool failed; nothing was recorded")
        # Already on its way to the store: its outcome decides (the store's own timeouts
        # bound the wait).
        try:
            return Outcome(draft, await future)
        except Exception as exc:
            raise StoreError(f"the store failed and the spool too: {exc}") from exc

    def _submit(self, draft: RecordDraft) -> asyncio.Future[ConsentRecord]:
        """Queue ``draft`` for the next group commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ConsentRecord] = loop.create_future()
        # A decision that timed out is spooled; its late failure needs no one to read it.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append((draft, future))
        committer = self._committer
        if committer is None or committer.done() or committer.get_loop() is not loop:
            self._committer = loop.create_task(self._commit())
        return future

    async def _commit(self) -> None:
        # Everything queued while the previous batch was being written goes in one batch.
        while self._queue:
            batch, self._queue = self._queue[:GROUP_COMMIT], self._queue[GROUP_COMMIT:]
            try:
                records = await self.store.append_many([draft for draft, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), record in zip(batch, records, strict=True):
                if not future.done():
                    future.set_result(record)

    async def _spool(self, draft: RecordDraft, reason: str) -> None:
        try:
            await anyio.to_thread.run_sync(self.spool.write, [draft])
        except SpoolError as exc:
            logger.error("decision %s NOT recorded: %s; and %s", draft.record_id, reason, exc)
            raise StoreError(f"{reason}, and the spool failed too: {exc.strerror}") from exc
        self.spooled += 1
        self.last_error = reason
        logger.warning("decision %s spooled: %s", draft.record_id, reason)
        if self._wake is not None:
            self._wake.set()

    async def replay(self) -> ReplayReport | None:
        """Store what waits in the spool (if anything and the store answers)."""
        if not self.spool.pending():
            return None
        async with self._replaying:
            total: ReplayReport | None = None
            for _ in range(MAX_REPLAY_ROUNDS):
                try:
                    report = await self.spool.replay(self.store)
                except (StoreError, OSError) as exc:
                    self.last_error = f"replay failed: {exc}"
                    logger.warning("spool replay failed, will retry: %s", exc)
                    return total
                total = report if total is None else _add(total, report)
                if report.busy or not self.spool.pending():
                    break
            if total is not None and total.replayed:
                logger.info("spool replayed: %d decision(s) now in the store", total.replayed)
            return total

    async def purge(self, *, dry_run: bool = False) -> PurgeReport:
        """Remove records older than ``retention_days``."""
        cutoff = self.clock() - timedelta(days=self.settings.retention_days)
        report = await self.store.purge(cutoff, dry_run=dry_run)
        if report.purged and not dry_run:
            logger.info("purged %d consent record(s) older than %s", report.purged, cutoff.date())
        return report

    def start(self) -> None:
        """Start the background work (replay, purge) in the running event loop."""
        loop = asyncio.get_running_loop()
        worker = self._worker
        if worker is not None and not worker.done() and worker.get_loop() is loop:
            return
        self._wake = asyncio.Event()
        self._worker = loop.create_task(self._background())

    @property
    def started(self) -> bool:
        return self._worker is not None and not self._worker.done()

    async def stop(self) -> None:
        """Stop the background work and finish the group commit under way."""
        worker, self._worker = self._worker, None
        if worker is not None and worker.get_loop() is asyncio.get_running_loop():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        committer = self._committer
        if committer is not None and committer.get_loop() is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await committer

    async def _background(self) -> None:
        loop = asyncio.get_running_loop()
        next_purge = loop.time()
        assert self._wake is not None
        while True:
            await self.replay()
            if loop.time() >= next_purge:
                try:
                    await self.purge()
                except Exception as exc:  # the store may be down: try again next time
                    logger.warning("ledger purge failed, will retry: %s", exc)
                next_purge = loop.time() + self.settings.purge_interval_minutes * 60
            self._wake.clear()
            wait = self.settings.replay_interval_seconds
            with contextlib.suppress(TimeoutError):
                # A spooled decision wakes the loop, but it waits the interval anyway:
                # the store has just failed, hammering it would not help.
                await asyncio.wait_for(self._wake.wait(), wait)
                await asyncio.sleep(wait)

    async def health(self) -> dict[str, Any]:
        """Return the ledger's state for the health endpoint."""
        try:
            await asyncio.wait_for(self.store.ping(), self.timeout)
            store = "ok"
        except (Exception, TimeoutError):
            store = "unavailable"
        depth = await anyio.to_thread.run_sync(self.spool.depth)
        return {
            "store": store,
            "spool": {"depth": depth.depth, "oldest": depth.oldest, "spooled": self.spooled},
        }


def _add(a: ReplayReport, b: ReplayReport) -> ReplayReport:
    return ReplayReport(
        a.replayed + b.replayed,
        a.duplicates + b.duplicates,
        b.remaining,
        a.corrupt + b.corrupt,
        b.busy,
    )
