"""The decision draft the ledger tests append, with any field changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from consentgate.consent import RecordDraft

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def draft(n: int = 0, consent_id: str = "c" * 22, **changes: Any) -> RecordDraft:
    """Return a custom decision made ``n`` minutes after ``T0``."""
    values: dict[str, Any] = {
        "consent_id": consent_id,
        "time": T0 + timedelta(minutes=n),
        "action": "custom",
        "granted": ("matomo",),
        "refused": ("facebook_pixel", "google_ads"),
        "revision": 1,
        "fingerprint": "f" * 64,
        "language": "de",
        "page_url": "https://www.example.de/strom",
        "ip": "203.0.113.0",
        "browser": "Firefox",
        "os": "Windows",
    }
    values.update(changes)
    return RecordDraft(**values)
