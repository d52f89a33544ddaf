"""The ledger commands of ``consentgate``: export, verify and summarise consent records."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from consentgate.config import ConfigError, Settings
from consentgate.consent.record import ConsentRecord
from consentgate.consent.store import Store, StoreError, open_store

DEFAULT_CONFIG = "consentgate.toml"
CSV_FIELDS = (
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
    "prev_hash",
    "hash",
    "format",
)


def run(args: argparse.Namespace) -> int:
    """Run a ledger command parsed by ``add_commands``; returns the exit status."""
    try:
        store = open_store(args.store or load_settings(args.config).store_url)
    except (ConfigError, ValueError, StoreError) as exc:
        print(f"consentgate: {exc}", file=sys.stderr)
        return 2
    try:
        result: int = asyncio.run(args.handler(store, args))
        return result
    except StoreError as exc:
        print(f"consentgate: {exc}", file=sys.stderr)
        return 2
    finally:
        asyncio.run(store.close())


def load_settings(path: str | None) -> Settings:
    """Read the settings file named by ``--config``, ``$CONSENTGATE_CONFIG`` or the default."""
    config = path or os.environ.get("CONSENTGATE_CONFIG") or DEFAULT_CONFIG
    environ = dict(os.environ)
    # These commands read the ledger and never sign a cookie, so a DPO can run them
    # without the app's signing keys; a throwaway key satisfies validation.
    environ.setdefault("CONSENTGATE_SECRET_KEYS", os.urandom(32).hex())
    return Settings.from_file(config, environ)


def add_commands(commands: Any) -> None:
    """Add the ledger commands (``export``, ``verify``, ``stats``) to a subparsers object."""
    export = commands.add_parser("export", help="write consent records as JSON Lines or CSV")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--since", type=parse_date, metavar="DATE", help="from this UTC date/time")
    export.add_argument(
        "--until", type=parse_date, metavar="DATE", help="before this UTC date/time"
    )
    export.add_argument("--consent-id", metavar="ID", help="only the records of one consent id")
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write here (atomically) instead of stdout"
    )
    export.set_defaults(handler=_export, run=run)

    verify = commands.add_parser("verify", help="check the hash chain; exit 1 if broken")
    verify.set_defaults(handler=_verify, run=run)

    stats = commands.add_parser("stats", help="decisions and opt-in rates per service")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(handler=_stats, run=run)


def parse_date(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


async def _export(store: Store, args: argparse.Namespace) -> int:
    if args.output:
        target = Path(args.output)
        # Write next to the target and rename: an interrupted export leaves no half file.
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                count = await _write_records(store, args, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)  # noqa: ASYNC240 - one cleanup call, no loop to block
            raise
    else:
        count = await _write_records(store, args, sys.stdout)
    print(f"exported {count} record(s)", file=sys.stderr)
    return 0


async def _write_records(store: Store, args: argparse.Namespace, out: TextIO) -> int:
    progress = _Progress(await store.count() if sys.stderr.isatty() else None)
    writer = csv.DictWriter(out, CSV_FIELDS) if args.format == "csv" else None
    if writer is not None:
        writer.writeheader()
    count = 0
    async for record in _selected(store, args):
        row = record.to_json()
        if writer is not None:
            row["granted"] = " ".join(row["granted"])
            row["refused"] = " ".join(row["refused"])
            writer.writerow(row)
        else:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
        progress.step(count)
    progress.done()
    return count


async def _selected(store: Store, args: argparse.Namespace) -> Any:
    if args.consent_id:
        for record in await store.records_for(args.consent_id):
            if (args.since is None or record.time >= args.since) and (
                args.until is None or record.time < args.until
            ):
                yield record
        return
    async for record in store.records(since=args.since, until=args.until):
        yield record


class _Progress:
    """A one-line progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self, total: int | None) -> None:
        self.total = total

    def step(self, count: int) -> None:
        if self.total and count % 1000 == 0:
            width = 30
            filled = int(width * min(count / self.total, 1.0))
            bar = "#" * filled + "-" * (width - filled)
            print(f"\r[{bar}] {count}/{self.total}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.total:
            print(file=sys.stderr)


async def _verify(store: Store, args: argparse.Namespace) -> int:
    report = await store.verify()
    print(report)
    return 0 if report.ok else 1


async def _stats(store: Store, args: argparse.Namespace) -> int:
    actions: Counter[str] = Counter()
    latest: dict[str, ConsentRecord] = {}
    async for record in store.records():
        actions[record.action] += 1
        latest[record.consent_id] = record
    granted: Counter[str] = Counter()
    offered: Counter[str] = Counter()
    for record in latest.values():
        granted.update(record.granted)
        offered.update(record.granted)
        offered.update(record.refused)
    summary: dict[str, Any] = {
        "records": sum(actions.values()),
        "visitors": len(latest),
        "actions": dict(sorted(actions.items())),
        "opt_in_rate": {
            service: round(granted[service] / offered[service], 4) for service in sorted(offered)
        },
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    buffer = io.StringIO()
    buffer.write(f"records: {summary['records']}  consent ids: {summary['visitors']}\n")
    for action, number in summary["actions"].items():
        buffer.write(f"  {action:<12} {number}\n")
    buffer.write("opt-in rate (latest decision per consent id):\n")
    for service, rate in summary["opt_in_rate"].items():
        buffer.write(f"  {service:<20} {rate:7.1%}\n")
    print(buffer.getvalue(), end="")
    return 0
