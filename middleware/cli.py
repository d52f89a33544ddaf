"""The ``consentgate`` command: the ledger commands plus ``logs sweep``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from consentgate.config import ConfigError
from consentgate.consent import cli as ledger
from consentgate.middleware.logfiles import expired_files, sweep

#: The bound of ``[access_log] retention_days``, applied to the flag as well.
MAX_RETENTION_DAYS = 3650


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 check failed, 2 usage/config)."""
    parser = _parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        (args.help_for or parser).print_help(sys.stderr)
        return 2
    result: int = run(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consentgate",
        description="Export, verify and summarise consent records; expire access logs.",
    )
    parser.set_defaults(help_for=parser)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"settings file (default: $CONSENTGATE_CONFIG or ./{ledger.DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--store", metavar="URL", help="ledger URL, overriding store_url of the settings"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    ledger.add_commands(commands)

    logs = commands.add_parser("logs", help="the access-log files")
    logs.set_defaults(help_for=logs)
    logs_commands = logs.add_subparsers(dest="logs_command", metavar="COMMAND")
    sweep_ = logs_commands.add_parser(
        "sweep",
        help="delete access-log files older than retention_days (for cron or a systemd timer)",
        description=(
            "Delete access-YYYY-MM-DD.log/.jsonl files whose date is more than "
            "[access_log] retention_days before today (UTC). Other files are never touched."
        ),
    )
    sweep_.add_argument(
        "--now",
        type=ledger.parse_date,
        metavar="ISO",
        help="pretend it is this UTC date/time (default: now), e.g. 2026-11-21",
    )
    sweep_.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    sweep_.add_argument(
        "--directory",
        metavar="DIR",
        help="overrides [access_log] directory (a relative one is taken from the current "
        "directory, so give cron an absolute path)",
    )
    sweep_.add_argument(
        "--retention-days", type=int, metavar="N", help="overrides [access_log] retention_days"
    )
    sweep_.set_defaults(run=_sweep)
    return parser


def _sweep(args: argparse.Namespace) -> int:
    directory: str | None = args.directory
    days: int | None = args.retention_days
    if directory is None or days is None:
        try:
            access = ledger.load_settings(args.config).access_log
        except ConfigError as exc:
            print(f"consentgate: {exc}", file=sys.stderr)
            return 2
        directory = directory or access.directory
        days = days if days is not None else access.retention_days
    if directory is None:
        print(
            "consentgate: no access-log directory; set [access_log] directory in the "
            "settings or pass --directory",
            file=sys.stderr,
        )
        return 2
    if not 1 <= days <= MAX_RETENTION_DAYS:
        print(
            f"consentgate: --retention-days {days!r} must be between 1 and {MAX_RETENTION_DAYS}",
            file=sys.stderr,
        )
        return 2
    today = (args.now or datetime.now(UTC)).astimezone(UTC).date()
    try:
        if args.dry_run:
            paths = expired_files(directory, days, today)
        else:
            paths = sweep(directory, days, today)
    except OverflowError:
        print(
            f"consentgate: --now {today.isoformat()} minus {days} day(s) is before year 1",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        print(f"consentgate: cannot sweep {directory!r}: {exc.strerror}", file=sys.stderr)
        return 2
    verb = "would delete" if args.dry_run else "deleted"
    for path in paths:
        print(f"{verb} {path}")
    print(
        f"{verb} {len(paths)} file(s) dated before {today.isoformat()} minus {days} day(s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
