"""The ledger commands of ``consentgate``: what a data protection officer runs.

``export``, ``verify``, ``stats``, ``purge``, ``erase`` and ``spool replay``. Exit status:
0 done, 1 a check failed (broken chain, unknown consent id, erase not confirmed, spool not
emptied or holding corrupt lines), 2 usage, settings or store error (one line on stderr,
no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from consentgate.config import ConfigError, Settings
from consentgate.consent.export import FORMATS, PERIODS, compute_stats, export_text
from consentgate.consent.store import Store, StoreError, open_store

DEFAULT_CONFIG = "consentgate.toml"
#: ``purge``'s retention without a settings file (``[ledger] retention_days``'s default).
DEFAULT_RETENTION_DAYS = 1095

Handler = Callable[[Store, Settings | None, argparse.Namespace], Coroutine[Any, Any, int]]
Validator = Callable[[Settings | None, argparse.Namespace], str | None]


class UsageError(Exception):
    """A command cannot run as given (exit status 2)."""


def run(args: argparse.Namespace) -> int:
    """Run a ledger command parsed by ``add_commands``; returns the exit status."""
    try:
        settings = _settings_for(args)
        validate: Validator | None = getattr(args, "validate", None)
        problem = validate(settings, args) if validate is not None else None
        if problem is not None:
            raise UsageError(problem)
        if args.store:
            url = args.store
        else:
            assert settings is not None  # loaded whenever --store is missing
            url = settings.store_url
        store = open_store(url)
    except (ConfigError, ValueError, StoreError, UsageError) as exc:
        print(f"consentgate: {exc}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    # Commands stream millions of short-lived objects; the long-lived ones (modules,
    # settings) need not be rescanned by every full collection meanwhile.
    gc.freeze()

    async def main() -> int:
        try:
            await store.ping()  # an unreachable store fails here, before any output
            return await handler(store, settings, args)
        finally:
            # A failed close changes nothing already read or committed.
            with contextlib.suppress(StoreError):
                await store.close()

    try:
        return asyncio.run(main())
    except BrokenPipeError:
        # The reader went away (`consentgate export | head`): no traceback, no flush error.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (StoreError, UsageError, OSError) as exc:  # OSError: disk full, spool unusable
        print(f"consentgate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nconsentgate: interrupted", file=sys.stderr)
        return 130


def load_settings(path: str | None) -> Settings:
    """Read the settings file named by ``--config``, ``$CONSENTGATE_CONFIG`` or the default."""
    config = path or os.environ.get("CONSENTGATE_CONFIG") or DEFAULT_CONFIG
    environ = dict(os.environ)
    # These commands read the ledger and never sign a cookie, so a DPO can run them
    # without the app's signing keys; a throwaway key satisfies validation.
    environ.setdefault("CONSENTGATE_SECRET_KEYS", os.urandom(32).hex())
    return Settings.from_file(config, environ)


def _settings_for(args: argparse.Namespace) -> Settings | None:
    """The settings, or ``None`` when ``--store`` names the ledger and no file is at hand."""
    named = args.config or os.environ.get("CONSENTGATE_CONFIG")
    if args.store and not named and not Path(DEFAULT_CONFIG).is_file():
        return None
    return load_settings(args.config)


def add_commands(commands: Any) -> None:
    """Add the ledger commands to a subparsers object (``consentgate.middleware.cli``)."""
    export = commands.add_parser(
        "export",
        help="write consent records as CSV (for Excel) or JSON Lines",
        description="Write consent records, oldest first, to stdout or a file. CSV opens "
        "in German Excel as is (UTF-8 with BOM, ';'-separated).",
    )
    export.add_argument("--format", choices=sorted(FORMATS), default="jsonl")
    _add_window(export)
    export.add_argument("--consent-id", metavar="ID", help="only the records of one consent id")
    export.add_argument("--service", metavar="ID", help="only decisions that offered this service")
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write here (atomically) instead of stdout"
    )
    export.set_defaults(handler=_export, run=run, validate=_check_service)

    verify = commands.add_parser(
        "verify",
        help="check the hash chain; exit 1 if broken",
        description="Walk every chain of the ledger. Exit 0 if intact, 1 naming the first "
        "broken record and what is wrong with it.",
    )
    verify.set_defaults(handler=_verify, run=run)

    stats = commands.add_parser(
        "stats",
        help="decisions and opt-in rates per service and category",
        description="Opt-in rate: of every decision that offered a service (granted or "
        "refused it), the share that granted it; a category sums its services.",
    )
    _add_window(stats)
    stats.add_argument("--by", choices=PERIODS, help="one row per UTC day, ISO week or month")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(handler=_stats, run=run)

    purge = commands.add_parser(
        "purge",
        help="delete records older than the retention period",
        description="Delete each chain's records older than the cutoff (default: now minus "
        "[ledger] retention_days, 1095 days unless set). The last deleted record "
        "becomes the chain's anchor, so verify still passes; note the anchors printed.",
    )
    purge.add_argument(
        "--before", type=parse_date, metavar="DATE", help="cutoff instead of the retention"
    )
    purge.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    purge.set_defaults(handler=_purge, run=run)

    erase = commands.add_parser(
        "erase",
        help="erase the personal fields of one consent id (GDPR Art. 17)",
        description="Blank page URL, IP, browser, OS and salt of every record of a consent "
        "id; the records and the chain stay verifiable. Asks to type the consent id "
        "unless --yes.",
    )
    erase.add_argument("consent_id", metavar="CONSENT_ID")
    erase.add_argument("--yes", action="store_true", help="do not ask (needed without a TTY)")
    erase.set_defaults(handler=_erase, run=run, validate=_check_confirmation)

    spool = commands.add_parser("spool", help="decisions spooled while the ledger was down")
    spool.set_defaults(help_for=spool)
    spool_commands = spool.add_subparsers(dest="spool_command", metavar="COMMAND")
    replay = spool_commands.add_parser(
        "replay",
        help="append the spooled decisions to the ledger",
        description="Append every spooled decision to the ledger (each once, even if "
        "replayed twice). Exit 1 if some remain, another replay is running or the spool "
        "held corrupt lines (kept aside in corrupt-*.jsonl).",
    )
    replay.add_argument("--directory", metavar="DIR", help="overrides [ledger] spool_directory")
    replay.set_defaults(handler=_spool_replay, run=run, validate=_check_spool_directory)


def _add_window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", type=parse_date, metavar="DATE", help="from this UTC date/time on"
    )
    parser.add_argument(
        "--until", type=parse_date, metavar="DATE", help="before this UTC date/time"
    )


def parse_date(text: str) -> datetime:
    """Parse ``YYYY-MM-DD`` or an ISO date-time; one without a time zone is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --- export -------------------------------------------------------------------------------


def _check_service(settings: Settings | None, args: argparse.Namespace) -> str | None:
    if args.service is None or settings is None or args.service in settings.services:
        return None
    configured = ", ".join(sorted(settings.services)) or "none"
    return f"--service {args.service!r} is not a configured service (configured: {configured})"


async def _export(store: Store, settings: Settings | None, args: argparse.Namespace) -> int:
    progress = await _progress_bar(store, "exported")
    exported = 0

    def counted(count: int) -> None:
        nonlocal exported
        exported = count
        if progress is not None:
            progress(count)

    chunks = export_text(
        store,
        fmt=args.format,
        since=args.since,
        until=args.until,
        consent_id=args.consent_id,
        service=args.service,
        progress=counted,
    )
    if args.output:
        await _write_atomically(Path(args.output), chunks)
    else:
        sys.stdout.flush()
        # Bytes, so CSV keeps its \r\n and UTF-8 whatever the console's encoding.
        await _write_chunks(chunks, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    if progress is not None:
        progress.done()
    print(f"exported {exported} record(s)", file=sys.stderr)
    return 0


async def _write_atomically(target: Path, chunks: AsyncIterator[str]) -> None:
    """Write ``chunks`` next to ``target`` and rename: a failed export leaves no file.

    The file is readable by its owner only (``mkstemp``): it holds personal data.
    """
    folder = target.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsageError(f"cannot write {str(target)!r}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            await _write_chunks(chunks, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # noqa: ASYNC240 - one cleanup call, no loop to block
        raise
    # The rename itself is durable once the folder is synced.
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


async def _write_chunks(chunks: AsyncIterator[str], out: IO[bytes]) -> None:
    """Write ``chunks`` as UTF-8; each write runs in a thread while the next chunk is made.

    A large export writes about 800 bytes per record; the system calls (copying into the
    page cache, waiting for writeback) then overlap the reading and formatting.
    """
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[int] | None = None
    try:
        async for chunk in chunks:
            data = chunk.encode()
            if pending is not None:
                await pending
            pending = loop.run_in_executor(None, out.write, data)
        if pending is not None:
            await pending
    except BaseException:
        if pending is not None and not pending.done():
            # The caller closes or deletes the file next: let the write finish first.
            await asyncio.wait([pending])
        if pending is not None and pending.done() and not pending.cancelled():
            pending.exception()  # retrieved: the first error is the one raised
        raise


class _Progress:
    """A one-line progress bar on stderr: count of total, percent, records per second."""

    def __init__(self, total: int, verb: str) -> None:
        self.total = total
        self.verb = verb
        self.began = time.monotonic()
        self.shown = 0.0
        self.count = 0

    def __call__(self, count: int) -> None:
        self.count = count
        now = time.monotonic()
        if now - self.shown >= 0.2:
            self.shown = now
            self._show(now)

    def _show(self, now: float) -> None:
        width = 30
        share = min(self.count / self.total, 1.0) if self.total else 1.0
        filled = int(width * share)
        bar = "#" * filled + "-" * (width - filled)
        rate = self.count / max(now - self.began, 1e-6)
        print(
            f"\r[{bar}] {self.verb} {self.count:,}/{self.total:,} {share:6.1%} "
            f"{rate:,.0f} records/s ",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def done(self) -> None:
        self._show(time.monotonic())
        print(file=sys.stderr)


async def _progress_bar(store: Store, verb: str) -> _Progress | None:
    """A progress bar against the ledger's size, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    return _Progress(await store.count(), verb)


# --- verify, stats ------------------------------------------------------------------------


async def _verify(store: Store, settings: Settings | None, args: argparse.Namespace) -> int:
    progress = await _progress_bar(store, "checked")
    report = await store.verify(progress)
    if progress is not None:
        progress.count = max(progress.count, report.checked)
        progress.done()
    print(report)
    return 0 if report.ok else 1


async def _stats(store: Store, settings: Settings | None, args: argparse.Namespace) -> int:
    categories = {} if settings is None else {s.id: s.category for s in settings.services.values()}
    stats = await compute_stats(
        store, since=args.since, until=args.until, by=args.by, categories=categories
    )
    if args.json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
    else:
        print(_stats_table(stats), end="")
    return 0


def _stats_table(stats: dict[str, Any]) -> str:
    totals = stats["totals"]
    window = f"{stats['since'] or 'the beginning'} to {stats['until'] or 'now'}"
    lines = [
        f"{totals['records']} decision(s) by {totals['consent_ids']} consent id(s), {window}",
        "actions: " + (", ".join(f"{a} {n}" for a, n in totals["actions"].items()) or "none"),
        "opt-in rate: of the decisions offering a service, the share granting it",
    ]
    for title, key in (("category", "categories"), ("service", "services")):
        names = list(stats[key])
        if not names:
            continue
        rows: list[list[str]] = [["period", "decisions", *names]]
        for period, tally in stats["periods"].items():
            rows.append([period, str(tally["decisions"]), *_rates(tally[key], names)])
        rows.append(["total", str(totals["records"]), *_rates(stats[key], names)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines.append("")
        lines.append(f"opt-in rate by {title}:")
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _rates(counts: dict[str, Any], names: list[str]) -> list[str]:
    rates = [counts[name]["opt_in_rate"] for name in names]
    return ["–" if rate is None else f"{rate:.1%}" for rate in rates]


# --- purge, erase -------------------------------------------------------------------------


async def _purge(store: Store, settings: Settings | None, args: argparse.Namespace) -> int:
    if args.before is not None:
        cutoff: datetime = args.before
    else:
        days = DEFAULT_RETENTION_DAYS if settings is None else settings.ledger.retention_days
        cutoff = datetime.now(UTC) - timedelta(days=days)
    report = await store.purge(cutoff, dry_run=args.dry_run)
    when = cutoff.astimezone(UTC).isoformat(timespec="seconds")
    if not report.purged:
        print(f"nothing to purge: no record older than {when}")
        return 0
    verb = "would purge" if report.dry_run else "purged"
    print(f"{verb} {report.purged} record(s) older than {when}")
    anchor = "would become" if report.dry_run else "is now"
    for chain, seq, digest in report.anchors:
        print(f"  chain {chain}: anchor {anchor} seq {seq}, hash {digest}")
    return 0


def _check_confirmation(settings: Settings | None, args: argparse.Namespace) -> str | None:
    if args.yes or sys.stdin.isatty():
        return None
    return (
        "erase asks to type the consent id, but stdin is not a terminal; "
        "pass --yes to erase without asking"
    )


async def _erase(store: Store, settings: Settings | None, args: argparse.Namespace) -> int:
    consent_id: str = args.consent_id
    records = await store.records_for(consent_id)
    if not records:
        print(f"consentgate: no records of consent id {consent_id!r}", file=sys.stderr)
        return 1
    if not args.yes:
        print(
            f"Erase page URL, IP, browser and OS of {len(records)} record(s) of consent id "
            f"{consent_id}? This cannot be undone.\nType the consent id to confirm: ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        if sys.stdin.readline().strip() != consent_id:
            print("consentgate: not erased (the consent id typed differs)", file=sys.stderr)
            return 1
    erased = await store.erase(consent_id, at=datetime.now(UTC))
    before = len(records) - erased
    already = f" ({before} erased before)" if before else ""
    print(f"erased the personal fields of {erased} record(s) of {consent_id}{already}")
    return 0


# --- spool replay -------------------------------------------------------------------------


def _check_spool_directory(settings: Settings | None, args: argparse.Namespace) -> str | None:
    if args.directory is None and settings is not None:
        args.directory = settings.ledger.spool_directory
    if args.directory is None:
        return "no spool directory; pass --directory (or a settings file with [ledger])"
    if not Path(args.directory).is_dir():
        return f"spool directory {args.directory!r} does not exist"
    return None


async def _spool_replay(store: Store, settings: Settings | None, args: argparse.Namespace) -> int:
    # Imported here: the spool is only needed by this command.
    from consentgate.consent.spool import replay_directory

    report = await replay_directory(args.directory, store)
    if report.busy:
        print(
            f"consentgate: another replay of {args.directory} is running; "
            f"{report.remaining} decision(s) wait",
            file=sys.stderr,
        )
        return 1
    print(
        f"replayed {report.replayed} decision(s) ({report.duplicates} already in the ledger), "
        f"{report.remaining} remaining in {args.directory}"
    )
    if report.corrupt:
        print(
            f"consentgate: {report.corrupt} spooled line(s) were not decisions; "
            f"kept in {args.directory}/corrupt-*.jsonl",
            file=sys.stderr,
        )
    return 1 if report.remaining or report.corrupt else 0
