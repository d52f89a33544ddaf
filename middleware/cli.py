"""The ``consentgate`` command: the ledger commands, ``logs sweep``, ``declaration``,
``audit`` and ``check``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from consentgate.config import LANGUAGES, ConfigError, Settings
from consentgate.consent import Store
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

    declaration = commands.add_parser(
        "declaration",
        help="print the cookie declaration and privacy-policy section for the settings",
        description=(
            "Generate the cookie declaration (providers, purposes, legal basis, cookies and "
            "lifetimes, third-country transfers, withdrawal) and the access-log paragraph "
            "from the settings, in German or English, as an HTML fragment or Markdown."
        ),
    )
    declaration.add_argument(
        "--lang", choices=LANGUAGES, help="language (default: the first of the settings' languages)"
    )
    declaration.add_argument(
        "--format", choices=("html", "md"), default="html", help="output format (default: html)"
    )
    declaration.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    declaration.set_defaults(run=_declaration)

    audit = commands.add_parser(
        "audit",
        help="list third-party hosts and cookies the app served that no service covers",
        description=(
            "Show what the middleware's tracker audit counted, per path: hosts in the HTML "
            "and cookie names set by the app that no configured service covers, for example "
            "a tag pasted into a template without updating the settings. Exit status 1 when "
            "there are findings, so CI can flag them."
        ),
    )
    audit.add_argument("--json", action="store_true", help="print JSON instead of text")
    audit.add_argument(
        "--clear",
        action="store_true",
        help="forget every finding (after updating the settings or removing the tag)",
    )
    audit.add_argument(
        "--lang", choices=LANGUAGES, default="de", help="language of the text (default: de)"
    )
    audit.set_defaults(run=_audit)

    check = commands.add_parser(
        "check",
        help="validate a settings file and print every problem with its fix",
        description=(
            "Validate the settings file (--config, $CONSENTGATE_CONFIG or ./consentgate.toml) "
            "and print every error and warning with the fix. Exit status 0 when there are no "
            "errors, 1 when there are errors (or warnings with --strict), 2 when the file "
            "cannot be read."
        ),
    )
    check.add_argument("file", nargs="?", metavar="FILE", help="the settings file to check")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.set_defaults(run=_check)
    return parser


def _declaration(args: argparse.Namespace) -> int:
    from consentgate.widgets.declaration import render_declaration

    try:
        settings = ledger.load_settings(args.config)
    except ConfigError as exc:
        print(f"consentgate: {exc}", file=sys.stderr)
        return 2
    language = args.lang or settings.default_language
    text = render_declaration(settings, language, args.format).text
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"consentgate: cannot write {args.output!r}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({language}, {args.format})", file=sys.stderr)
    return 0


def _audit(args: argparse.Namespace) -> int:
    from consentgate.consent.cli import run as run_ledger_command

    args.handler = _audit_report
    return run_ledger_command(args)


async def _audit_report(store: Store, settings: Settings | None, args: argparse.Namespace) -> int:
    from consentgate.middleware.audit import describe, read_findings

    if args.clear:
        cleared = await store.clear_audit()
        print(f"cleared {cleared} finding(s)", file=sys.stderr)
        return 0
    findings = await read_findings(store, settings)
    if args.json:
        print(json.dumps([dataclasses.asdict(f) for f in findings], indent=2, ensure_ascii=False))
    else:
        for finding in findings:
            print(describe(finding, args.lang))
        if not findings:
            print(
                "no unknown hosts or cookies seen"
                if args.lang == "en"
                else "keine unbekannten Dienste oder Cookies gesehen",
                file=sys.stderr,
            )
    return 1 if findings else 0


def _check(args: argparse.Namespace) -> int:
    from consentgate.config.check import run as run_check

    return run_check(args.file or args.config, strict=args.strict)


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
