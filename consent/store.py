"""The store protocol every consent ledger implements, and opening one from a URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from consentgate.consent.record import ConsentRecord, RecordDraft, StoredRecord, VerifyReport

#: Store URL schemes ``open_store`` understands.
STORE_SCHEMES = ("sqlite", "redis", "rediss", "redis+cluster", "rediss+cluster")
#: Distinct tracker-audit findings a store keeps; counts of further ones are not kept, so a
#: site with an id in every path cannot grow the audit without bound.
AUDIT_MAX_ENTRIES = 5000
#: Longest path and name an audit finding keeps (characters).
AUDIT_MAX_CHARS = 200

AuditKey = tuple[str, str, str]
"""A tracker-audit finding: (``host`` or ``cookie``, the host or cookie name, the path)."""


class StoreError(RuntimeError):
    """The ledger could not do what was asked; nothing was half-written."""


class StoreUnavailable(StoreError):
    """The ledger cannot be reached (down, timed out); the request may be retried later."""


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What a retention purge removed (or, dry, would remove)."""

    purged: int
    """Records removed, or that a dry run would remove."""
    cutoff: datetime
    """Records older than this went."""
    anchors: tuple[tuple[int, int, str], ...]
    """Per chain touched: (chain, seq, hash) of the last record removed — the new anchor."""
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A third-party host or an app cookie no configured service covers, as counted so far."""

    kind: str
    """``host`` (seen in the HTML) or ``cookie`` (set by the app)."""
    name: str
    path: str
    count: int
    first_seen: str
    """When first counted (UTC, ISO 8601), as the ledger's record times."""
    last_seen: str


ProgressCallback = Callable[[int], None]


@runtime_checkable
class Store(Protocol):
    """An append-only ledger of consent records on one or more hash chains.

    A single-file store has one chain (0); a sharded one puts every consent id on the chain
    its id hashes to, so one visitor's records stay in order on one chain.
    """

    async def append(self, draft: RecordDraft) -> ConsentRecord:
        """Store ``draft`` durably and return the sealed record.

        Appending a draft whose ``record_id`` is already stored returns the stored record
        and stores nothing (a retried append is not recorded twice). Raises
        ``StoreUnavailable`` when the store cannot be reached.
        """
        ...

    async def append_many(self, drafts: Sequence[RecordDraft]) -> list[ConsentRecord]:
        """Append several drafts in the given order (each as ``append`` would); one round trip
        or transaction where the store allows."""
        ...

    def stored(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[StoredRecord]:
        """Yield stored records with ``since <= time < until``, chains merged by time.

        Streams in batches: memory stays constant whatever the size of the ledger.
        """
        ...

    def records(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[ConsentRecord]:
        """Like ``stored`` but decoded into ``ConsentRecord`` objects."""
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

    async def add_audit(self, counts: Mapping[AuditKey, int], *, at: datetime) -> None:
        """Add tracker-audit counts, shared by every app process using this store.

        At most ``AUDIT_MAX_ENTRIES`` distinct findings are kept; counts of further new
        ones are dropped (known ones keep counting).
        """
        ...

    async def audit(self) -> list[AuditEntry]:
        """Return the tracker-audit findings, most frequent first."""
        ...

    async def clear_audit(self) -> int:
        """Forget every tracker-audit finding; returns how many there were."""
        ...

    async def verify(self, progress: ProgressCallback | None = None) -> VerifyReport:
        """Walk every chain and report whether each is intact; ``progress(n)`` now and then."""
        ...

    async def purge(self, before: datetime, *, dry_run: bool = False) -> PurgeReport:
        """Remove each chain's leading records older than ``before``, keeping an anchor.

        Only a chain's prefix goes (a record is never removed while an older one of the
        same chain stays), and the hash and seq of the last removed record become the
        chain's anchor, so ``verify`` still passes afterwards.
        """
        ...

    async def erase(self, consent_id: str, *, at: datetime) -> int:
        """Blank the personal fields of every record of ``consent_id`` (GDPR Art. 17).

        Each record keeps its ``personal_digest`` as the redaction marker and gets
        ``redacted_at``; the chain still verifies. Returns how many records were erased
        now (already erased ones are not counted).
        """
        ...

    async def ping(self) -> None:
        """Return if the store answers; raise ``StoreUnavailable`` otherwise."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


def open_store(url: str) -> Store:
    """Open the ledger a store URL names.

    - ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``;
    - ``redis://[:password@]host:port/db`` or ``rediss://...`` (TLS): one Redis server;
    - ``redis+cluster://host:port,host:port,...`` or ``rediss+cluster://...``: a Redis
      Cluster, given any of its nodes.

    Redis URLs take ``?shards=N`` (chains, default 16, fixed once records exist),
    ``?key_prefix=consentgate`` and ``?timeout=2.0`` (seconds per command).
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "sqlite":
        from consentgate.consent.sqlite import SQLiteStore

        path = url.removeprefix("sqlite:///")
        if not url.startswith("sqlite:///") or not path or path.endswith("/"):
            raise ValueError(f"store URL {url!r} names no file; use sqlite:///path/to/file.db")
        return SQLiteStore(path)
    if scheme in STORE_SCHEMES:
        from consentgate.consent.redis import RedisStore

        return RedisStore.from_url(url)
    # Only the scheme is echoed: a store URL may carry a password.
    raise ValueError(
        f"store URL scheme {scheme!r} is not supported; use one of "
        "sqlite:///path/to/file.db, redis://host:6379/0, rediss://host:6380/0 or "
        "redis+cluster://host1:7000,host2:7001"
    )
