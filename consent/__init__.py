"""Consent state, the signed consent cookie, and the tamper-evident ledger of decisions."""

from __future__ import annotations

from consentgate.consent.record import (
    ACTIONS,
    GENESIS_HASH,
    Action,
    ChainVerifier,
    ConsentRecord,
    RecordDraft,
    VerifyReport,
    new_record_id,
    verify_chain,
)
from consentgate.consent.state import ConsentState, CookieCodec, new_consent_id
from consentgate.consent.store import Store, StoreError, open_store

__all__ = [
    "ACTIONS",
    "GENESIS_HASH",
    "Action",
    "ChainVerifier",
    "ConsentRecord",
    "ConsentState",
    "CookieCodec",
    "RecordDraft",
    "Store",
    "StoreError",
    "VerifyReport",
    "new_consent_id",
    "new_record_id",
    "open_store",
    "verify_chain",
]
