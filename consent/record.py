"""Consent records, their canonical encoding and the hash chain that makes them tamper-evident."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Self, get_args

import orjson

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
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"time {moment!r} has no time zone; records use aware UTC times")
    if offset:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")[:26] + "Z"


def parse_time(text: str) -> datetime:
    """Parse a time written by ``format_time`` (raises ``ValueError`` on any other form)."""
    if len(text) != 27 or text[-1] != "Z" or text[10] != "T":
        raise ValueError(f"time {text!r} is not of the form 2026-11-21T12:00:00.000000Z")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def new_salt() -> str:
    """Return a random salt for a record's personal fields (erased with them)."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordDraft:
    """A decision about to be recorded; the store adds chain, sequence number and hashes."""

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
    salt: str = field(default_factory=new_salt)
    """Random; hashed with the personal fields so their digest reveals nothing once erased."""

    def to_json(self) -> dict[str, Any]:
        """Return every field as JSON-ready values (the spool's and the export's form)."""
        return {f.name: _plain_value(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Self:
        """Rebuild a draft or record from ``to_json`` output (``ValueError`` on bad input)."""
        try:
            data = {f.name: values[f.name] for f in fields(cls) if f.name in values}
            data["time"] = parse_time(data["time"])
            if data.get("redacted_at") is not None:
                data["redacted_at"] = parse_time(data["redacted_at"])
            data["granted"] = tuple(data["granted"])
            data["refused"] = tuple(data["refused"])
            if data["action"] not in ACTIONS:
                raise ValueError(f"action {data['action']!r} is not one of {ACTIONS!r}")
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a consent {cls.__name__}: {exc!r}") from None


#: The fields erased on request (GDPR Art. 17); the chain hashes only their digest.
PERSONAL_FIELDS = ("browser", "ip", "os", "page_url", "salt")
#: The fields of the hashed body, besides ``personal_digest``.
_BODY_FIELDS = (
    "action",
    "chain",
    "consent_id",
    "fingerprint",
    "format",
    "granted",
    "language",
    "prev_hash",
    "record_id",
    "refused",
    "revision",
    "seq",
    "time",
)


class StoredRecord(NamedTuple):
    """A record as a store keeps it: the exact hashed bytes, decoded lazily.

    ``body`` is the canonical JSON the chain hashes (``hash`` is its SHA-256); ``personal``
    the canonical JSON of the personal fields, whose SHA-256 is the body's
    ``personal_digest`` — ``None`` once erased. ``time`` is ``body``'s time (for sorting).
    """

    chain: int
    seq: int
    time: str
    body: str
    hash: str
    personal: str | None
    redacted_at: str | None = None

    def values(self) -> dict[str, Any]:
        """Return every field as JSON values (the export form), personal ones blank if erased."""
        values: dict[str, Any] = orjson.loads(self.body)
        if self.personal is None:
            values.update(dict.fromkeys(PERSONAL_FIELDS, ""))
        else:
            values.update(orjson.loads(self.personal))
        values["hash"] = self.hash
        values["redacted_at"] = self.redacted_at
        return values

    def record(self) -> ConsentRecord:
        """Decode into a ``ConsentRecord`` (raises ``ValueError`` if it is not one)."""
        return ConsentRecord.from_json(self.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentRecord(RecordDraft):
    """One stored decision: a sealed draft, linked to its predecessor by ``prev_hash``.

    The hash covers every field except the personal ones, which it covers through
    ``personal_digest`` (SHA-256 of their canonical encoding with the random ``salt``).
    Erasing a record blanks the personal fields and keeps the digest as the redaction
    marker, so the chain still verifies and nothing else can change unnoticed.
    """

    chain: int = 0
    """Which chain (shard) of the ledger the record is on; 0 for a single-chain store."""
    seq: int
    prev_hash: str
    hash: str
    personal_digest: str
    format: int = RECORD_FORMAT
    redacted_at: datetime | None = None
    """When the personal fields were erased; ``None`` while they are present."""

    @classmethod
    def seal(cls, draft: RecordDraft, *, seq: int, prev_hash: str, chain: int = 0) -> ConsentRecord:
        """Return the record for ``draft`` at position ``seq`` of ``chain`` after ``prev_hash``."""
        return cls.seal_stored(draft, seq=seq, prev_hash=prev_hash, chain=chain)[0]

    @classmethod
    def seal_stored(
        cls, draft: RecordDraft, *, seq: int, prev_hash: str, chain: int = 0
    ) -> tuple[ConsentRecord, StoredRecord]:
        """Like ``seal``, also returning the stored form (each text encoded only once)."""
        granted = tuple(sorted(draft.granted))
        refused = tuple(sorted(draft.refused))
        time = format_time(draft.time)
        personal = _dumps(
            {
                "browser": draft.browser,
                "ip": draft.ip,
                "os": draft.os,
                "page_url": draft.page_url,
                "salt": draft.salt,
            }
        )
        digest = hashlib.sha256(personal.encode()).hexdigest()
        # Keys in sorted order, as the canonical encoding requires.
        body = _dumps(
            {
                "action": draft.action,
                "chain": chain,
                "consent_id": draft.consent_id,
                "fingerprint": draft.fingerprint,
                "format": RECORD_FORMAT,
                "granted": granted,
                "language": draft.language,
                "personal_digest": digest,
                "prev_hash": prev_hash,
                "record_id": draft.record_id,
                "refused": refused,
                "revision": draft.revision,
                "seq": seq,
                "time": time,
            }
        )
        digest_of_body = hashlib.sha256(body.encode()).hexdigest()
        record = cls(
            consent_id=draft.consent_id,
            time=draft.time,
            action=draft.action,
            granted=granted,
            refused=refused,
            revision=draft.revision,
            fingerprint=draft.fingerprint,
            language=draft.language,
            page_url=draft.page_url,
            ip=draft.ip,
            browser=draft.browser,
            os=draft.os,
            record_id=draft.record_id,
            salt=draft.salt,
            chain=chain,
            seq=seq,
            prev_hash=prev_hash,
            hash=digest_of_body,
            personal_digest=digest,
        )
        return record, StoredRecord(chain, seq, time, body, digest_of_body, personal)

    @property
    def redacted(self) -> bool:
        """Whether the personal fields were erased."""
        return self.redacted_at is not None

    def body(self) -> bytes:
        """Return the canonical encoding the hash is computed over."""
        return _canonical(
            {name: getattr(self, name) for name in (*_BODY_FIELDS, "personal_digest")}
        )

    def personal(self) -> bytes | None:
        """Return the canonical encoding of the personal fields; ``None`` once erased."""
        if self.redacted:
            return None
        return _canonical({name: getattr(self, name) for name in PERSONAL_FIELDS})

    def computed_hash(self) -> str:
        """Return the SHA-256 of ``body()``; equals ``hash`` unless the record was altered."""
        return hashlib.sha256(self.body()).hexdigest()

    def stored(self) -> StoredRecord:
        """Return the form a store keeps."""
        personal = self.personal()
        return StoredRecord(
            chain=self.chain,
            seq=self.seq,
            time=format_time(self.time),
            body=self.body().decode(),
            hash=self.hash,
            personal=None if personal is None else personal.decode(),
            redacted_at=None if self.redacted_at is None else format_time(self.redacted_at),
        )

    def redact(self, at: datetime) -> ConsentRecord:
        """Return this record with its personal fields erased at ``at`` (digest kept)."""
        if self.redacted:
            return self
        return replace(self, browser="", ip="", os="", page_url="", salt="", redacted_at=at)


_sha256 = hashlib.sha256
#: Reads chain, personal digest, predecessor, record id and seq out of a body as written by
#: ``seal_stored`` (canonical JSON with sorted keys); other bodies are decoded as JSON.
_LINKS = re.compile(
    r'\{"action":"[^"\\]*","chain":(\d+),.*,"personal_digest":"([0-9a-f]{64})",'
    r'"prev_hash":"([0-9a-f]{64})","record_id":"([^"\\]*)",.*,"seq":(\d+),'
    r'"time":"[^"\\]*"\}'
).fullmatch
#: Encodes values already in sorted key order canonically (no spaces, UTF-8 as is).
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _canonical(values: dict[str, Any]) -> bytes:
    """Encode record values canonically: sorted keys, no spaces, UTF-8, UTC times."""
    return json.dumps(
        {k: _plain_value(v) for k, v in values.items()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def _plain_value(value: Any) -> Any:
    """Return a record value as a JSON type: times as ``format_time`` text, tuples as lists."""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where one chain of a ledger starts and ends, as found by a verification."""

    chain: int
    checked: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of walking every chain of a ledger."""

    ok: bool
    checked: int
    problems: tuple[str, ...] = ()
    chains: tuple[ChainHead, ...] = ()

    @property
    def head_hash(self) -> str:
        """The hash of the last record of the first chain (the only one of SQLite)."""
        return self.chains[0].head_hash if self.chains else GENESIS_HASH

    @classmethod
    def combine(cls, reports: Iterable[VerifyReport]) -> VerifyReport:
        """Merge the reports of several chains into one."""
        reports = list(reports)
        return cls(
            ok=all(r.ok for r in reports),
            checked=sum(r.checked for r in reports),
            problems=tuple(p for r in reports for p in r.problems),
            chains=tuple(c for r in reports for c in r.chains),
        )

    def __str__(self) -> str:
        count = len(self.chains)
        chains = f" on {count} chains" if count > 1 else ""
        if self.ok:
            return f"chain intact: {self.checked} records{chains}"
        shown = "\n".join(f"  {p}" for p in self.problems[:20])
        more = len(self.problems) - 20
        tail = f"\n  ... and {more} more" if more > 0 else ""
        head = f"chain BROKEN: {len(self.problems)} problem(s) in {self.checked} records{chains}"
        return f"{head}\n  first: {self.problems[0]}\n{shown}{tail}"


class ChainVerifier:
    """Checks the records of one chain one at a time, in stored order, so any size streams.

    Detects an edited record (its hash no longer matches its body, or its personal fields
    no longer match their digest), a deleted one (a gap in ``seq`` and a ``prev_hash`` that
    points elsewhere) and reordered ones (``seq`` out of order, links broken). ``anchor``
    is the hash before the first record kept (``GENESIS_HASH`` until a purge).
    """

    def __init__(self, *, anchor: str = GENESIS_HASH, first_seq: int = 1, chain: int = 0) -> None:
        self.chain = chain
        self._expected_prev = anchor
        self._expected_seq = first_seq
        self._problems: list[str] = []
        self._checked = 0
        self._first: int | None = None
        self._last: int | None = None

    def feed(self, record: ConsentRecord) -> None:
        """Check the next record of the chain."""
        personal = record.personal()
        self._check(
            record.seq,
            record.record_id,
            record.chain,
            record.prev_hash,
            record.computed_hash() == record.hash,
            personal is None or hashlib.sha256(personal).hexdigest() == record.personal_digest,
        )
        self._expected_prev = record.hash

    def feed_stored(self, stored: StoredRecord) -> None:
        """Check the next record in its stored form (no decoding beyond the body's links)."""
        links = _LINKS(stored.body)
        if links is not None:
            chain_text, digest, prev_hash, record_id, seq_text = links.groups()
            seq, chain = int(seq_text), int(chain_text)
        else:  # not as this version writes bodies: read it as JSON
            try:
                values = orjson.loads(stored.body)
                seq, record_id = values["seq"], values["record_id"]
                chain, prev_hash = values["chain"], values["prev_hash"]
                digest = values["personal_digest"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                self._checked += 1
                self._problems.append(
                    f"{self._where(stored.chain, stored.seq, '?')}: body is not a consent record"
                )
                self._expected_prev, self._expected_seq = stored.hash, stored.seq + 1
                return
        self._check(
            seq,
            record_id,
            chain,
            prev_hash,
            _sha256(stored.body.encode()).hexdigest() == stored.hash,
            stored.personal is None or _sha256(stored.personal.encode()).hexdigest() == digest,
        )
        if seq != stored.seq:
            self._problems.append(
                f"{self._where(chain, stored.seq, record_id)}: stored at seq {stored.seq} "
                f"but its body says {seq} (moved)"
            )
        self._expected_prev = stored.hash

    def _where(self, chain: int, seq: int, record_id: str) -> str:
        return f"chain {chain} seq {seq} ({record_id})"

    def _check(
        self,
        seq: int,
        record_id: str,
        chain: int,
        prev_hash: str,
        body_ok: bool,
        personal_ok: bool,
    ) -> None:
        self._checked += 1
        if self._first is None:
            self._first = seq
        self._last = seq
        if (
            body_ok
            and personal_ok
            and chain == self.chain
            and seq == self._expected_seq
            and prev_hash == self._expected_prev
        ):
            self._expected_seq = seq + 1
            return
        where = self._where(self.chain, seq, record_id)
        if not body_ok:
            self._problems.append(f"{where}: content altered (hash does not match)")
        if not personal_ok:
            self._problems.append(f"{where}: personal fields altered (digest does not match)")
        if chain != self.chain:
            self._problems.append(f"{where}: belongs to chain {chain} (moved)")
        if seq != self._expected_seq:
            self._problems.append(
                f"{where}: expected seq {self._expected_seq} (record missing or out of order)"
            )
        if prev_hash != self._expected_prev:
            self._problems.append(f"{where}: does not link to its predecessor")
        self._expected_seq = seq + 1

    def report(self) -> VerifyReport:
        """Return the verdict over everything fed so far."""
        head = ChainHead(self.chain, self._checked, self._first, self._last, self._expected_prev)
        return VerifyReport(
            ok=not self._problems,
            checked=self._checked,
            problems=tuple(self._problems),
            chains=(head,),
        )


def verify_chain(
    records: Iterable[ConsentRecord],
    *,
    anchor: str = GENESIS_HASH,
    first_seq: int = 1,
    chain: int = 0,
) -> VerifyReport:
    """Walk ``records`` in stored order and report every broken link (see ``ChainVerifier``)."""
    verifier = ChainVerifier(anchor=anchor, first_seq=first_seq, chain=chain)
    for record in records:
        verifier.feed(record)
    return verifier.report()
