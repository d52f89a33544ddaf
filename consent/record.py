"""Consent records, their canonical encoding and the hash chain that makes them tamper-evident."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal, get_args

Action = Literal["accept-all", "reject-all", "custom", "withdraw"]
ACTIONS: tuple[Action, ...] = get_args(Action)

#: The predecessor of the first record of a chain.
GENESIS_HASH = "0" * 64
#: Bumped when the canonical encoding changes; stored in every record.
RECORD_FORMAT = 1


def new_record_id() -> str:
    """Return a fresh record id; clients generate it so a retried append is not stored twice."""
    return uuid.uuid4().hex


def format_time(moment: datetime) -> str:
    """Return ``moment`` as ISO 8601 UTC with microseconds, e.g. ``2026-11-21T12:00:00.000000Z``."""
    if moment.tzinfo is None:
        raise ValueError(f"time {moment!r} has no time zone; records use aware UTC times")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse a time written by ``format_time``."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordDraft:
    """A decision about to be recorded; the store adds sequence number and hashes."""

    consent_id: str
    time: datetime
    action: Action
    granted: tuple[str, ...]
    refused: tuple[str, ...]
    revision: int
    fingerprint: str
    """SHA-256 of the exact banner texts and service list the visitor saw."""
    language: str
    page_url: str
    """The page the decision was made on, without query string or fragment."""
    ip: str
    """The visitor's address, masked before it gets here."""
    browser: str
    os: str
    record_id: str = field(default_factory=new_record_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentRecord(RecordDraft):
    """One stored decision: a sealed draft, linked to its predecessor by ``prev_hash``."""

    seq: int
    prev_hash: str
    hash: str
    format: int = RECORD_FORMAT

    @classmethod
    def seal(cls, draft: RecordDraft, *, seq: int, prev_hash: str) -> ConsentRecord:
        """Return the record for ``draft`` at position ``seq`` after ``prev_hash``."""
        values = {f.name: getattr(draft, f.name) for f in fields(RecordDraft)}
        values.update(
            granted=tuple(sorted(draft.granted)),
            refused=tuple(sorted(draft.refused)),
            seq=seq,
            prev_hash=prev_hash,
            format=RECORD_FORMAT,
        )
        body = _canonical(values)
        return cls(**values, hash=hashlib.sha256(body).hexdigest())

    def body(self) -> bytes:
        """Return the canonical encoding the hash is computed over (everything but ``hash``)."""
        values = asdict(self)
        del values["hash"]
        return _canonical(values)

    def computed_hash(self) -> str:
        """Return the SHA-256 of ``body()``; equals ``hash`` unless the record was altered."""
        return hashlib.sha256(self.body()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """Return the record as JSON-ready values (the export and stored form)."""
        return _plain(asdict(self))

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ConsentRecord:
        """Rebuild a record from ``to_json`` output (raises ``ValueError`` on bad input)."""
        try:
            data = dict(values)
            data["time"] = parse_time(data["time"])
            data["granted"] = tuple(data["granted"])
            data["refused"] = tuple(data["refused"])
            if data["action"] not in ACTIONS:
                raise ValueError(f"action {data['action']!r} is not one of {ACTIONS!r}")
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a consent record: {exc}") from None


def _canonical(values: dict[str, Any]) -> bytes:
    """Encode record values canonically: sorted keys, no spaces, UTF-8, UTC times."""
    return json.dumps(
        _plain(values), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Return record values as JSON types: times as ``format_time`` text, tuples as lists."""
    return {
        k: (format_time(v) if isinstance(v, datetime) else list(v) if isinstance(v, tuple) else v)
        for k, v in values.items()
    }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of walking a chain of records."""

    ok: bool
    checked: int
    first_seq: int | None = None
    last_seq: int | None = None
    head_hash: str = GENESIS_HASH
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.ok:
            return f"chain intact: {self.checked} records (seq {self.first_seq}..{self.last_seq})"
        shown = "\n".join(f"  {p}" for p in self.problems[:20])
        more = len(self.problems) - 20
        tail = f"\n  ... and {more} more" if more > 0 else ""
        head = f"chain BROKEN: {len(self.problems)} problem(s) in {self.checked} records"
        return f"{head}\n{shown}{tail}"


class ChainVerifier:
    """Checks records one at a time, in stored order, so a ledger of any size streams through.

    Detects an edited record (its hash no longer matches its body), a deleted one (a gap
    in ``seq`` and a ``prev_hash`` that points elsewhere) and reordered ones (``seq`` out
    of order, links broken). ``anchor`` is the hash before the first record kept.
    """

    def __init__(self, *, anchor: str = GENESIS_HASH, first_seq: int = 1) -> None:
        self._expected_prev = anchor
        self._expected_seq = first_seq
        self._problems: list[str] = []
        self._checked = 0
        self._first: int | None = None
        self._last: int | None = None

    def feed(self, record: ConsentRecord) -> None:
        """Check the next record of the chain."""
        self._checked += 1
        if self._first is None:
            self._first = record.seq
        self._last = record.seq
        where = f"seq {record.seq} ({record.record_id})"
        if record.computed_hash() != record.hash:
            self._problems.append(f"{where}: content altered")
        if record.seq != self._expected_seq:
            self._problems.append(
                f"{where}: expected seq {self._expected_seq} (record missing or out of order)"
            )
        if record.prev_hash != self._expected_prev:
            self._problems.append(f"{where}: does not link to its predecessor")
        self._expected_prev, self._expected_seq = record.hash, record.seq + 1

    def report(self) -> VerifyReport:
        """Return the verdict over everything fed so far."""
        return VerifyReport(
            ok=not self._problems,
            checked=self._checked,
            first_seq=self._first,
            last_seq=self._last,
            head_hash=self._expected_prev,
            problems=tuple(self._problems),
        )


def verify_chain(
    records: Iterable[ConsentRecord], *, anchor: str = GENESIS_HASH, first_seq: int = 1
) -> VerifyReport:
    """Walk ``records`` in stored order and report every broken link (see ``ChainVerifier``)."""
    verifier = ChainVerifier(anchor=anchor, first_seq=first_seq)
    for record in records:
        verifier.feed(record)
    return verifier.report()
