"""Export a consent ledger as CSV or JSON Lines, and summarise it as opt-in statistics.

Pure functions over the ``Store`` protocol, shared by the ``consentgate`` command and the
DPO's HTTP endpoints. Everything streams: memory stays constant however large the ledger
(statistics grow with the number of periods × services, plus one set of consent ids).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final, Literal, Protocol

from consentgate.consent.record import StoredRecord, format_time
from consentgate.consent.store import Store

#: The columns of an export, in order (CSV header; JSON Lines objects have the same keys).
EXPORT_FIELDS: Final = (
    "chain",
    "seq",
    "record_id",
    "consent_id",
    "time",
    "action",
    "granted",
    "refused",
    "revision",
    "fingerprint",
    "language",
    "page_url",
    "ip",
    "browser",
    "os",
    "salt",
    "personal_digest",
    "redacted_at",
    "prev_hash",
    "hash",
    "format",
)
#: Records per chunk ``export_text`` yields.
CHUNK_ROWS = 1000
#: What a spreadsheet takes for the start of a formula (OWASP "CSV injection").
FORMULA_START: Final = frozenset("=+-@\t\r")
#: The category of a service ``compute_stats`` was not told about.
UNKNOWN_CATEGORY = "unknown"

Period = Literal["day", "week", "month"]
PERIODS: Final[tuple[Period, ...]] = ("day", "week", "month")


def matches(values: Mapping[str, Any], *, consent_id: str | None, service: str | None) -> bool:
    """Return whether a record's values pass the filters (``None`` lets everything through).

    ``service`` passes a record that offered it: listed in ``granted`` or ``refused``.
    """
    if consent_id is not None and values.get("consent_id") != consent_id:
        return False
    return service is None or service in values["granted"] or service in values["refused"]


class ExportFormat(Protocol):
    """How one export format writes records."""

    @property
    def media_type(self) -> str:
        """The HTTP ``Content-Type`` of an export."""
        ...

    @property
    def suffix(self) -> str:
        """The file name suffix, with its dot."""
        ...

    def start(self) -> str:
        """Return what precedes the first row (byte-order mark, header)."""
        ...

    def row(self, values: dict[str, Any]) -> str:
        """Return one record, given as ``StoredRecord.values()``, with its line end."""
        ...

    def rows(self, records: Sequence[StoredRecord]) -> str:
        """Return the rows of ``records`` (what ``row`` returns for each, joined)."""
        ...


class CSVFormat:
    """CSV as German Excel opens it with a double click.

    ``;`` between cells (German Excel uses ``,`` as the decimal separator and reads ``;``),
    UTF-8 with a byte-order mark (without one Excel on Windows reads cp1252 and garbles
    umlauts), ``\\r\\n`` line ends, cells quoted only when needed, ``granted`` and
    ``refused`` as space-separated service ids, ``redacted_at`` empty while unset. A text
    cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading
    ``'`` so the spreadsheet shows it instead of evaluating it as a formula.
    """

    media_type = "text/csv; charset=utf-8"
    suffix = ".csv"

    def start(self) -> str:
        """Return the byte-order mark and the header row."""
        return "\ufeff" + self._write([list(EXPORT_FIELDS)])

    def row(self, values: dict[str, Any]) -> str:
        """Return one record as a CSV line."""
        return self._write([_cells(values)])

    def rows(self, records: Sequence[StoredRecord]) -> str:
        """Return the CSV lines of ``records``."""
        return self._write([_cells(stored.values()) for stored in records])

    @staticmethod
    def _write(rows: Iterable[Sequence[Any]]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows(rows)
        return buffer.getvalue()


def _cells(values: Mapping[str, Any]) -> list[Any]:
    """Return a record's CSV cells in ``EXPORT_FIELDS`` order, formula-guarded."""
    cells: list[Any] = []
    for name in EXPORT_FIELDS:
        value = values[name]
        if value is None:
            cells.append("")
            continue
        if type(value) is list:
            value = " ".join(value)
        if type(value) is str and value[:1] in FORMULA_START:
            value = "'" + value
        cells.append(value)
    return cells


class JSONLFormat:
    """JSON Lines: one object per record with the keys of ``EXPORT_FIELDS``.

    Each line is the canonical encoding of ``StoredRecord.values()`` — sorted keys, no
    spaces, UTF-8 as is (``ensure_ascii=False``) — so a line's ``personal_digest`` and
    ``hash`` can be checked by re-encoding its fields the way the ledger does.
    """

    media_type = "application/x-ndjson"
    suffix = ".jsonl"

    def start(self) -> str:
        """Return nothing: JSON Lines has no header."""
        return ""

    def row(self, values: dict[str, Any]) -> str:
        """Return one record as a JSON line."""
        return json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"

    def rows(self, records: Sequence[StoredRecord]) -> str:
        """Return the JSON lines of ``records`` (spliced from the stored JSON texts)."""
        lines = []
        for stored in records:
            line = _spliced_line(stored)
            lines.append(self.row(stored.values()) if line is None else line)
        return "".join(lines)


#: The personal fields of an erased record, as spliced into a JSON line.
_ERASED = ('"browser":""', ',"ip":""', ',"os":"","page_url":""', ',"salt":""')


def _spliced_line(stored: StoredRecord) -> str | None:
    """Return ``JSONLFormat.row(stored.values())`` without decoding and re-encoding.

    Body and personal texts are canonical JSON (sorted keys, flat, no spaces), so the
    merged object with sorted keys is their pieces interleaved with ``hash`` and
    ``redacted_at``. A key pattern ``,"key":`` cannot occur inside a JSON string (a quote
    in a string is escaped), so ``str.find`` locates the keys exactly. Returns ``None``
    when the texts are not laid out as format 1 records are; the caller then re-encodes.
    """
    body = stored.body
    if not body.startswith('{"action":') or not body.endswith("}"):
        return None
    chain = body.find(',"chain":', 10)
    fmt = body.find(',"format":1,"granted":', chain)
    language = body.find(',"language":', fmt)
    digest = body.find(',"personal_digest":', language)
    refused = body.find(',"refused":', digest)
    seq = body.find(',"seq":', refused)
    if min(chain, fmt, language, digest, refused, seq) < 0:
        return None
    personal = stored.personal
    if personal is None:
        browser, ip, os_url, salt = _ERASED
    else:
        if not personal.startswith('{"browser":') or not personal.endswith("}"):
            return None
        at_ip = personal.find(',"ip":', 11)
        at_os = personal.find(',"os":', at_ip)
        at_salt = personal.find(',"salt":', at_os)
        if min(at_ip, at_os, at_salt) < 0 or personal.find(',"page_url":', at_os) < 0:
            return None
        browser = personal[1:at_ip]
        ip = personal[at_ip:at_os]
        os_url = personal[at_os:at_salt]
        salt = personal[at_salt:-1]
    digest_hash = stored.hash
    hash_text = f'"{digest_hash}"' if digest_hash.isalnum() else json.dumps(digest_hash)
    redacted = stored.redacted_at
    redacted_text = "null" if redacted is None else json.dumps(redacted, ensure_ascii=False)
    return "".join(
        (
            body[:chain],
            ",",
            browser,
            body[chain:language],
            ',"hash":',
            hash_text,
            ip,
            body[language:digest],
            os_url,
            body[digest:refused],
            ',"redacted_at":',
            redacted_text,
            body[refused:seq],
            salt,
            body[seq:],
            "\n",
        )
    )


#: The export formats by name.
FORMATS: Final[dict[str, ExportFormat]] = {"csv": CSVFormat(), "jsonl": JSONLFormat()}


async def export_text(
    store: Store,
    *,
    fmt: str,
    since: datetime | None = None,
    until: datetime | None = None,
    consent_id: str | None = None,
    service: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> AsyncIterator[str]:
    """Yield an export of ``store`` in format ``fmt`` (a key of ``FORMATS``) as text chunks.

    First ``start()`` (possibly empty), then the rows of ``CHUNK_ROWS`` records at a time,
    in the order ``Store.stored`` gives (chains merged by time). Filters: ``since <= time
    < until``, one ``consent_id`` (via ``records_for``), one ``service`` offered (granted
    or refused). ``progress(n)`` gets the number of records exported so far after each
    chunk and once at the end with the total. Raises ``ValueError`` for an unknown format.
    """
    try:
        export_format = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"export format {fmt!r} is not one of {sorted(FORMATS)!r}") from None
    yield export_format.start()
    count = 0
    batch: list[StoredRecord] = []
    loads = json.loads
    async for stored in _selected(store, since=since, until=until, consent_id=consent_id):
        if service is not None and not matches(
            loads(stored.body), consent_id=None, service=service
        ):
            continue
        batch.append(stored)
        if len(batch) == CHUNK_ROWS:
            text = export_format.rows(batch)
            count += len(batch)
            batch = []
            yield text
            if progress is not None:
                progress(count)
    if batch:
        count += len(batch)
        yield export_format.rows(batch)
    if progress is not None:
        progress(count)


async def _selected(
    store: Store,
    *,
    since: datetime | None,
    until: datetime | None,
    consent_id: str | None,
) -> AsyncIterator[StoredRecord]:
    if consent_id is None:
        async for stored in store.stored(since=since, until=until):
            yield stored
        return
    low = "" if since is None else format_time(since)
    high = "~" if until is None else format_time(until)
    for record in await store.records_for(consent_id):
        stored = record.stored()
        if low <= stored.time < high:
            yield stored


class _Tally:
    """The counts of one period (or of everything)."""

    __slots__ = ("actions", "decisions", "granted", "offered")

    def __init__(self) -> None:
        self.decisions = 0
        self.actions: Counter[str] = Counter()
        self.granted: Counter[str] = Counter()
        self.offered: Counter[str] = Counter()

    def add(self, other: _Tally) -> None:
        self.decisions += other.decisions
        self.actions.update(other.actions)
        self.granted.update(other.granted)
        self.offered.update(other.offered)


async def compute_stats(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by: Period | None = None,
    categories: Mapping[str, str] = {},  # noqa: B006 - read only
) -> dict[str, Any]:
    """Count the decisions with ``since <= time < until`` and the opt-in rate per service.

    **Opt-in rate** of a service: among every decision (record) in the period whose
    ``granted`` or ``refused`` lists the service, the share that granted it —
    ``granted / offered``, rounded to 4 decimals, ``None`` when nothing offered it. Every
    decision counts, whatever its action (a withdrawal refusing the service counts as
    offered and not granted) and however often the same consent id decided again; it is
    not a rate per visitor. The rate of a category sums its services: granted and
    offered are the totals over the category's services (``categories`` maps a service
    id to its category; services not in it count under ``"unknown"``).

    Periods are UTC: ``by="day"`` keys ``2026-11-21``, ``"week"`` the ISO week
    ``2026-W47``, ``"month"`` ``2026-11``; ``by=None`` gives no periods. Returns::

        {"since": "…Z" | None, "until": "…Z" | None, "by": by,
         "totals": {"records": N, "consent_ids": K, "actions": {action: n}},
         "services": {id: {"category", "granted", "offered", "opt_in_rate"}},
         "categories": {category: {"granted", "offered", "opt_in_rate"}},
         "periods": {key: {"decisions", "actions", "services", "categories"}}}

    Every period lists every service and category of the whole result. Only the record
    bodies are decoded, never the personal fields. Memory grows with periods × services,
    plus the set of distinct consent ids (``consent_ids`` is exact: about 100 bytes per
    distinct id, e.g. 50 MB for 500,000 ids).
    """
    if by is not None and by not in PERIODS:
        raise ValueError(f"period {by!r} is not one of {PERIODS!r}")
    loads = json.loads
    periods: dict[str, _Tally] = {}
    ids: set[str] = set()
    week_of: dict[str, str] = {}
    async for stored in store.stored(since=since, until=until):
        body = loads(stored.body)
        ids.add(body["consent_id"])
        time: str = body["time"]
        if by is None:
            key = ""
        elif by == "day":
            key = time[:10]
        elif by == "month":
            key = time[:7]
        else:
            day = time[:10]
            key = week_of.get(day) or week_of.setdefault(day, _iso_week(day))
        tally = periods.get(key)
        if tally is None:
            tally = periods[key] = _Tally()
        tally.decisions += 1
        tally.actions[body["action"]] += 1
        granted = body["granted"]
        tally.granted.update(granted)
        tally.offered.update(granted)
        tally.offered.update(body["refused"])
    total = _Tally()
    for tally in periods.values():
        total.add(tally)
    services = sorted(total.offered)
    category_of = {s: categories.get(s, UNKNOWN_CATEGORY) for s in services}
    return {
        "since": None if since is None else format_time(since),
        "until": None if until is None else format_time(until),
        "by": by,
        "totals": {
            "records": total.decisions,
            "consent_ids": len(ids),
            "actions": dict(sorted(total.actions.items())),
        },
        "services": {
            s: {"category": category_of[s], **_rate(total.granted[s], total.offered[s])}
            for s in services
        },
        "categories": _category_rates(total, category_of),
        "periods": {
            key: {
                "decisions": tally.decisions,
                "actions": dict(sorted(tally.actions.items())),
                "services": {s: _rate(tally.granted[s], tally.offered[s]) for s in services},
                "categories": _category_rates(tally, category_of),
            }
            for key, tally in sorted(periods.items())
            if by is not None
        },
    }


def _iso_week(day: str) -> str:
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def _rate(granted: int, offered: int) -> dict[str, Any]:
    return {
        "granted": granted,
        "offered": offered,
        "opt_in_rate": round(granted / offered, 4) if offered else None,
    }


def _category_rates(tally: _Tally, category_of: Mapping[str, str]) -> dict[str, Any]:
    granted: Counter[str] = Counter()
    offered: Counter[str] = Counter()
    for service, category in category_of.items():
        granted[category] += tally.granted[service]
        offered[category] += tally.offered[service]
    return {c: _rate(granted[c], offered[c]) for c in sorted(set(category_of.values()))}

