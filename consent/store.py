"""The store protocol every consent ledger implements, and opening one from a URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol, runtime_checkable

from consentgate.consent.record import ConsentRecord, RecordDraft, VerifyReport


class StoreError(RuntimeError):
    """The ledger could not do what was asked; nothing was half-written."""


@runtime_checkable
class Store(Protocol):
    """An append-only, hash-chained ledger of consent records."""

    async def append(self, draft: RecordDraft) -> ConsentRecord:
        """Store ``draft`` durably and return the sealed record.

        Appending a draft whose ``record_id`` is already stored returns the stored record
        and stores nothing (a retried append is not recorded twice).
        """
        ...

    def records(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[ConsentRecord]:
        """Yield records with ``since <= time < until``, in chain order."""
        ...

    async def records_for(self, consent_id: str) -> list[ConsentRecord]:
        """Return every record of one consent id, oldest first."""
        ...

    async def count(self) -> int:
        """Return how many records the ledger holds."""
        ...

    async def put_banner(self, fingerprint: str, content: str) -> None:
        """Keep the banner content a fingerprint stands for (idempotent)."""
        ...

    async def banner(self, fingerprint: str) -> str | None:
        """Return the banner content stored for ``fingerprint``, if any."""
        ...

    async def verify(self) -> VerifyReport:
        """Walk the whole chain and report whether it is intact."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


def open_store(url: str) -> Store:
    """Open the ledger a store URL names.

    ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``.
    """
    if url.startswith("sqlite:///"):
        from consentgate.consent.sqlite import SQLiteStore

        path = url.removeprefix("sqlite:///")
        if not path or path.endswith("/"):
            raise ValueError(f"store URL {url!r} names no file; use sqlite:///path/to/file.db")
        return SQLiteStore(path)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ValueError(f"store URL scheme {scheme!r} is not supported; use sqlite:///path/to/file.db")
