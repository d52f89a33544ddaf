"""The tracker audit: third-party hosts and app cookies that no configured service covers.

The middleware counts, per path, the third-party hosts its rewriter saw in HTML and the
cookie names the app set, when no service of the settings covers them: a tag someone pasted
into a template without updating the settings shows up here. Nothing about visitors is
kept: only paths (without query), hosts, cookie names, counts and times. Each process
counts in bounded memory and adds its counts to the ledger's store now and then, so the
dashboard and ``consentgate audit`` show what every worker saw.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from consentgate.config import Language, Settings
from consentgate.consent.store import AUDIT_MAX_CHARS, AuditEntry, AuditKey, Store, StoreError
from consentgate.middleware.matcher import ParsedURL, ServiceIndex

logger = logging.getLogger("consentgate")

#: Distinct findings one process keeps between two flushes.
MAX_PENDING = 2000
#: Seconds between two flushes of a process's counts to the store.
FLUSH_SECONDS = 30.0
#: The path findings on error pages (not 2xx) are counted under.
AUDIT_ERROR_PATH = "*"

_TEXTS: dict[Language, dict[str, str]] = {
    "de": {
        "host": "unbekannter Dienst: {name} auf {path}",
        "cookie": "unbekanntes Cookie: {name} auf {path}",
        "seen": "{count}× gesehen, zuletzt {last}",
        "error_pages": "Fehlerseiten",
    },
    "en": {
        "host": "unknown service: {name} on {path}",
        "cookie": "unknown cookie: {name} on {path}",
        "seen": "seen {count}×, last {last}",
        "error_pages": "error pages",
    },
}


class TrackerAudit:
    """Counts blocked elements per service, and unknown hosts and cookies per path.

    Counts wait in memory until ``flush`` adds them to the store. At most ``max_pending``
    distinct (kind, name, path) triples wait; further new ones are counted in ``dropped``
    so the operator knows the list is incomplete.
    """

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self.blocked: Counter[str] = Counter()
        self.dropped = 0
        self._pending: Counter[AuditKey] = Counter()
        self._lock = threading.Lock()

    def record(
        self,
        path: str,
        *,
        blocked: dict[str, int] | None = None,
        hosts: Iterable[str] | None = None,
        cookies: Iterable[str] | None = None,
    ) -> None:
        """Count one response's findings (``path`` without the query string)."""
        path = path[:AUDIT_MAX_CHARS]
        with self._lock:
            if blocked:
                self.blocked.update(blocked)
            pending = self._pending
            for kind, names in (("host", hosts or ()), ("cookie", cookies or ())):
                for name in names:
                    key = (kind, name[:AUDIT_MAX_CHARS], path)
                    if key in pending or len(pending) < self.max_pending:
                        pending[key] += 1
                    else:
                        self.dropped += 1

    def pending(self) -> dict[AuditKey, int]:
        """Return the counts not yet added to the store."""
        with self._lock:
            return dict(self._pending)

    async def flush(self, store: Store, *, at: datetime | None = None) -> int:
        """Add the waiting counts to ``store``; returns how many findings were flushed.

        When the store refuses (``StoreError``), the counts wait for the next flush (still
        bounded) and the error propagates. Counts are delivered at most once.
        """
        with self._lock:
            taken, self._pending = self._pending, Counter()
        if not taken:
            return 0
        try:
            await store.add_audit(taken, at=at or datetime.now(UTC))
        except StoreError:
            # Refused or not reachable: nothing was added. A timeout or cancellation is not
            # caught, since the write may still complete (a thread, a sent script): the
            # counts are then given up rather than risk counting them twice.
            with self._lock:
                for key, count in taken.items():
                    if key in self._pending or len(self._pending) < self.max_pending:
                        self._pending[key] += count
            raise
        return len(taken)


def covered(entry: AuditEntry, settings: Settings, index: ServiceIndex | None = None) -> bool:
    """Return whether a configured service now covers a finding (settings since updated)."""
    if entry.kind == "cookie":
        return entry.name == settings.cookie.name or any(
            service.matches_cookie(entry.name) for service in settings.services.values()
        )
    index = index or ServiceIndex(settings)
    return bool(index.services_for_url(ParsedURL(entry.name, "/", False), origin_only=True))


async def read_findings(store: Store, settings: Settings | None = None) -> list[AuditEntry]:
    """Return the store's findings, most frequent first, without those now covered."""
    entries = await store.audit()
    if settings is None:
        return entries
    index = ServiceIndex(settings)
    return [e for e in entries if not covered(e, settings, index)]


def describe(entry: AuditEntry, language: Language = "de") -> str:
    """Return one line such as ``unbekannter Dienst: cdn.example.net auf /kontakt``."""
    texts = _TEXTS[language]
    path = texts["error_pages"] if entry.path == AUDIT_ERROR_PATH else entry.path
    line = texts[entry.kind if entry.kind in texts else "host"].format(name=entry.name, path=path)
    seen = texts["seen"].format(count=entry.count, last=entry.last_seen[:16].replace("T", " "))
    return f"{line} ({seen})"
