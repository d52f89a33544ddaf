"""Bounded counters of what the rewriter saw, for the operator's tracker audit.

Nothing about visitors is kept: only paths, third-party hosts, cookie names and counts.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """A third-party host, or a cookie the app set, that no configured service covers."""

    kind: str
    """``host`` or ``cookie``."""
    name: str
    path: str
    count: int


class TrackerAudit:
    """Counts blocked elements per service and unknown hosts and cookies per path.

    At most ``max_entries`` distinct (kind, name, path) triples are kept; later ones are
    counted in ``dropped`` so the operator knows the list is incomplete.
    """

    def __init__(self, max_entries: int = 2000) -> None:
        self.max_entries = max_entries
        self.blocked: Counter[str] = Counter()
        self.dropped = 0
        self._unknown: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()

    def record(
        self,
        path: str,
        *,
        blocked: dict[str, int] | None = None,
        hosts: set[str] | None = None,
        cookies: list[str] | None = None,
    ) -> None:
        """Count one response's findings."""
        with self._lock:
            if blocked:
                self.blocked.update(blocked)
            for kind, names in (("host", hosts or ()), ("cookie", cookies or ())):
                for name in names:
                    key = (kind, name, path[:200])
                    if key in self._unknown or len(self._unknown) < self.max_entries:
                        self._unknown[key] += 1
                    else:
                        self.dropped += 1

    def findings(self) -> list[Finding]:
        """Return the unknown hosts and cookies, most frequent first."""
        with self._lock:
            items = self._unknown.most_common()
        return [Finding(kind, name, path, count) for (kind, name, path), count in items]
