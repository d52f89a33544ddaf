"""Export a consent ledger as CSV or JSON Lines, and summarise it as opt-in statistics.

Pure functions over the ``Store`` protocol, shared by the ``consentgate`` command and the
DPO's HTTP endpoints. Everything streams: memory stays constant however large the ledger
(statistics grow with the number of periods × services, plus one set of consent ids).
"""

from __future__ import annotations

import csv
import io
import json
import operator
import re
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
        """Return the CSV lines of ``records`` (what ``row`` gives for each).

        The common record — nothing escaped in its JSON, no cell starting a formula or
        holding a ``;`` — is cut out of the stored texts by ``_CSV_BODY`` and
        ``_CSV_PERSONAL`` and joined without the ``csv`` module, which would cost twice
        the time of the rest. Any other record goes through ``row``.
        """
        # Hex hashes cannot start a formula or need quoting; checked once per chunk.
        hashes = "".join([stored.hash for stored in records])
        body_match = _CSV_BODY if hashes.isascii() and hashes.encode().isalnum() else None
        personal_match = _CSV_PERSONAL
        lines: list[str] = []
        append = lines.append
        for stored in records:
            personal = stored.personal
            body = None if body_match is None or personal is None else body_match(stored.body)
            fields = None if body is None or personal is None else personal_match(personal)
            if body is None or fields is None:
                append(self.row(stored.values()))
                continue
            line = ";".join(_CSV_ORDER(body.groups() + fields.groups() + (stored.hash, "", "1")))
            if line.count(";") != _SEPARATORS:  # a cell holds a ";": the csv module quotes it
                append(self.row(stored.values()))
                continue
            # The only quotes left are those of granted and refused: '"a","b"' -> 'a b'.
            append(line.replace('","', " ").replace('"', "") + "\r\n")
        return "".join(lines)

    @staticmethod
    def _write(rows: Iterable[Sequence[Any]]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows(rows)
        return buffer.getvalue()


#: A JSON string cell ``CSVFormat.rows`` takes as is: nothing escaped, no formula start.
_PLAIN = r'"([^"\\=+\-@][^"\\]*|)"'
#: A JSON list of such strings, the first not starting a formula (the cell starts with it).
_PLAIN_LIST = r'\[((?:"[^"\\=+\-@][^"\\]*"(?:,"[^"\\]*")*)?)\]'
#: The body of a format 1 record whose cells need no escaping, one group per field.
_CSV_BODY = re.compile(
    rf'\{{"action":{_PLAIN},"chain":(\d+),"consent_id":{_PLAIN},"fingerprint":{_PLAIN},'
    rf'"format":1,"granted":{_PLAIN_LIST},"language":{_PLAIN},"personal_digest":{_PLAIN},'
    rf'"prev_hash":{_PLAIN},"record_id":{_PLAIN},"refused":{_PLAIN_LIST},'
    rf'"revision":(-?\d+),"seq":(\d+),"time":{_PLAIN}\}}'
).fullmatch
#: The personal fields of a format 1 record whose cells need no escaping.
_CSV_PERSONAL = re.compile(
    rf'\{{"browser":{_PLAIN},"ip":{_PLAIN},"os":{_PLAIN},"page_url":{_PLAIN},"salt":{_PLAIN}\}}'
).fullmatch
#: The fields in the order of the groups of ``_CSV_BODY``, ``_CSV_PERSONAL``, then hash,
#: redacted_at and format; ``_CSV_ORDER`` picks them in ``EXPORT_FIELDS`` order.
_CSV_GROUPS = (
    *("action", "chain", "consent_id", "fingerprint", "granted", "language"),
    *("personal_digest", "prev_hash", "record_id", "refused", "revision", "seq", "time"),
    *("browser", "ip", "os", "page_url", "salt", "hash", "redacted_at", "format"),
)
_CSV_ORDER = operator.itemgetter(*(_CSV_GROUPS.index(name) for name in EXPORT_FIELDS))
_SEPARATORS = len(EXPORT_FIELDS) - 1


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
    spaces, UTF-8 as is (``ensure_ascii=False``) — except that U+0085, U+2028 and U+2029
    are escaped, so that no line splitter breaks a record. Decoded, a line's fields
    re-encode into its ``personal_digest`` and ``hash``.
    """

    media_type = "application/x-ndjson"
    suffix = ".jsonl"

    def start(self) -> str:
        """Return nothing: JSON Lines has no header."""
        return ""

    def row(self, values: dict[str, Any]) -> str:
        """Return one record as a JSON line."""
        line = json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return _one_line(line + "\n")

    def rows(self, records: Sequence[StoredRecord]) -> str:
        """Return the JSON lines of ``records``, spliced from the stored JSON texts.

        Body and personal texts are canonical JSON (sorted keys, flat, no spaces), so the
        line with all keys sorted is their pieces interleaved with ``hash`` and
        ``redacted_at`` — the same text ``row(stored.values())`` gives, at a fraction of
        the cost of decoding and encoding. A pattern ``,"key":`` cannot occur inside a
        JSON string (a quote in one is escaped), so ``str.index`` finds the keys exactly.
        A record not laid out as format 1 records are is re-encoded with ``row``.
        """
        # Hex hashes need no escaping; checked once per chunk rather than per record.
        hashes = "".join([stored.hash for stored in records])
        if not (hashes.isascii() and hashes.encode().isalnum()):
            return "".join([self.row(stored.values()) for stored in records])
        lines: list[str] = []
        append = lines.append
        # Inlined (no call per record): this runs a million times for a large ledger.
        for stored in records:
            body = stored.body
            personal = stored.personal
            try:
                if not body.startswith('{"action":') or body[-1] != "}":
                    raise ValueError("not a format 1 body")
                chain = body.index(',"chain":', 10)
                language = body.index(',"language":', body.index(',"format":1,"granted":', chain))
                digest = body.index(',"personal_digest":', language)
                refused = body.index(',"refused":', digest)
                seq = body.index(',"seq":', refused)
                if personal is None:
                    browser, ip, os_url, salt = _ERASED
                else:
                    if not personal.startswith('{"browser":') or personal[-1] != "}":
                        raise ValueError("not format 1 personal fields")
                    at_ip = personal.index(',"ip":', 11)
                    at_os = personal.index(',"os":', at_ip)
                    at_salt = personal.index(',"salt":', personal.index(',"page_url":', at_os))
                    browser = personal[1:at_ip]
                    ip = personal[at_ip:at_os]
                    os_url = personal[at_os:at_salt]
                    salt = personal[at_salt:-1]
            except ValueError:
                append(self.row(stored.values()))
                continue
            redacted = stored.redacted_at
            redacted_text = "null" if redacted is None else json.dumps(redacted, ensure_ascii=False)
            append(
                f'{body[:chain]},{browser}{body[chain:language]},"hash":"{stored.hash}"{ip}'
                f'{body[language:digest]}{os_url}{body[digest:refused]},"redacted_at":'
                f"{redacted_text}{body[refused:seq]}{salt}{body[seq:]}\n"
            )
        return _one_line("".join(lines))


#: Line breaks to ``str.splitlines`` (and old JavaScript) that JSON leaves unescaped.
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _one_line(text: str) -> str:
    """Escape ``_LINE_BREAKS`` (only ever inside strings): a line holds one record for any
    reader. Cheap: at most three scans at ``memchr`` speed, and none for U+2028/U+2029
    in text of Latin-1 characters only (Python knows it holds none)."""
    if "\x85" in text or "\u2028" in text or "\u2029" in text:
        return text.translate(_LINE_BREAKS)
    return text


#: The personal fields of an erased record, as spliced into a JSON line.
_ERASED = ('"browser":""', ',"ip":""', ',"os":"","page_url":""', ',"salt":""')


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
    if consent_id is None:
        source = store.stored(since=since, until=until)
    else:
        source = _records_of(store, consent_id, since=since, until=until)
    rows = export_format.rows
    count = 0
    batch: list[StoredRecord] = []
    try:
        # One loop per case: this runs a million times for a large ledger.
        if service is None:
            async for stored in source:
                batch.append(stored)
                if len(batch) == CHUNK_ROWS:
                    count += CHUNK_ROWS
                    text, batch = rows(batch), []
                    yield text
                    if progress is not None:
                        progress(count)
        else:
            offers = _offers(service)
            async for stored in source:
                if not offers(stored.body):
                    continue
                batch.append(stored)
                if len(batch) == CHUNK_ROWS:
                    count += CHUNK_ROWS
                    text, batch = rows(batch), []
                    yield text
                    if progress is not None:
                        progress(count)
    finally:
        # A consumer that stops early (a client gone) ends the store's iteration now.
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()
    if batch:
        count += len(batch)
        yield rows(batch)
    if progress is not None:
        progress(count)


def _offers(service: str) -> Callable[[str], bool]:
    """Return whether a record body lists ``service`` in ``granted`` or ``refused``."""
    needle = json.dumps(service, ensure_ascii=False)
    plain = '"' not in service and "\\" not in service

    def offers(body: str) -> bool:
        fields = _STATS_BODY(body) if plain else None
        if fields is None:
            values = json.loads(body)
            return service in values["granted"] or service in values["refused"]
        # The lists hold quoted ids without quotes or backslashes inside: a plain search.
        return needle in fields[3] or needle in fields[4]

    return offers


async def _records_of(
    store: Store, consent_id: str, *, since: datetime | None, until: datetime | None
) -> AsyncIterator[StoredRecord]:
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
    categories: Mapping[str, str] = {},
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
    fast_fields = _STATS_BODY
    periods: dict[str, _Tally] = {}
    ids: set[str] = set()
    week_of: dict[str, str] = {}
    async for stored in store.stored(since=since, until=until):
        fields = fast_fields(stored.body)
        if fields is None:
            body = loads(stored.body)
            action, consent_id, time = body["action"], body["consent_id"], body["time"]
            granted, refused = body["granted"], body["refused"]
        else:
            action, consent_id, granted_text, refused_text, time = fields.groups()
            granted = granted_text[1:-1].split('","') if granted_text else ()
            refused = refused_text[1:-1].split('","') if refused_text else ()
        ids.add(consent_id)
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
        tally.actions[action] += 1
        tally.granted.update(granted)
        tally.offered.update(granted)
        tally.offered.update(refused)
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


#: What statistics need of a format 1 body with nothing escaped in these fields (a regular
#: expression is a third of the cost of ``json.loads``; any other body is decoded).
_STATS_BODY = re.compile(
    r'\{"action":"([^"\\]*)","chain":\d+,"consent_id":"([^"\\]*)","fingerprint":"[^"\\]*",'
    r'"format":1,"granted":\[([^\]\\]*)\],"language":"[^"\\]*","personal_digest":"[^"\\]*",'
    r'"prev_hash":"[^"\\]*","record_id":"[^"\\]*","refused":\[([^\]\\]*)\],'
    r'"revision":-?\d+,"seq":\d+,"time":"([^"\\]*)"\}'
).fullmatch


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
