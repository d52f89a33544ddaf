"""Consent state, the signed consent cookie, and the tamper-evident ledger of decisions."""

from __future__ import annotations

from consentgate.consent.ledger import Ledger, Outcome
from consentgate.consent.record import (
    ACTIONS,
    GENESIS_HASH,
    PERSONAL_FIELDS,
    Action,
    ChainVerifier,
    ConsentRecord,
    RecordDraft,
    StoredRecord,
    VerifyReport,
    new_record_id,
    verify_chain,
)
from consentgate.consent.spool import ReplayReport, Spool, SpoolError
from consentgate.consent.state import ConsentState, CookieCodec, new_consent_id
from consentgate.consent.store import (
    AuditEntry,
    PurgeReport,
    Store,
    StoreError,
    StoreUnavailable,
    open_store,
)

__all__ = [
    "ACTIONS",
    "GENESIS_HASH",
    "PERSONAL_FIELDS",
    "Action",
    "AuditEntry",
    "ChainVerifier",
    "ConsentRecord",
    "ConsentState",
    "CookieCodec",
    "Ledger",
    "Outcome",
    "PurgeReport",
    "RecordDraft",
    "ReplayReport",
    "Spool",
    "SpoolError",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredRecord",
    "VerifyReport",
    "new_consent_id",
    "new_record_id",
    "open_store",
    "verify_chain",
]
