"""The consentgate ledger commands against real SQLite ledger files (and real processes)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import pty
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consentgate.consent import ConsentRecord, RecordDraft, verify_chain
from consentgate.consent import export as export_module
from consentgate.consent.export import EXPORT_FIELDS
from consentgate.consent.record import StoredRecord
from consentgate.consent.spool import Spool
from consentgate.consent.sqlite import SQLiteStore
from consentgate.consent.store import StoreUnavailable
from consentgate.middleware.cli import main

T0 = datetime(2026, 10, 30, 10, 0, tzinfo=UTC)  # a Friday; ISO week 44
EVIL = '=HYPERLINK("https://evil.example/","Klick")'
# (hours after T0, consent id, action, granted, refused)
DECISIONS = [
    (0, "a", "accept-all", ("facebook_pixel", "matomo", "youtube"), ()),  # 10-30, W44
    (26, "b", "reject-all", (), ("facebook_pixel", "matomo", "youtube")),  # 10-31, W44
    (47, "c", "custom", ("matomo",), ("facebook_pixel",)),  # 11-01, W44
    (70, "a", "withdraw", ("youtube",), ("facebook_pixel", "matomo")),  # 11-02, W45
    (82, "d", "custom", ("legacy_chat", "matomo", "youtube"), ("facebook_pixel",)),  # 11-02
]
A, B, C, D = (letter * 22 for letter in "abcd")


def cli(*argv: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    """Run the installed command in a fresh process (no TTY anywhere)."""
    return subprocess.run(
        [sys.executable, "-m", "consentgate.middleware.cli", *argv],
        capture_output=True,
        text=True,
        stdin=stdin,
        check=False,
    )


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A settings file and a ledger of five decisions by four visitors over two months."""
    path = tmp_path / "ledger.db"
    config = tmp_path / "consentgate.toml"
    config.write_text(
        f'store_url = "sqlite:///{path}"\n[services.matomo]\nurl = "https://s.example.de/"\n'
        "[services.youtube]\n[services.facebook_pixel]\n",
        encoding="utf-8",
    )

    async def fill() -> None:
        store = SQLiteStore(path)
        for n, (hours, cid, action, granted, refused) in enumerate(DECISIONS):
            await store.append(
                RecordDraft(
                    consent_id=cid * 22, time=T0 + timedelta(hours=hours), action=action,  # type: ignore[arg-type]
                    granted=granted, refused=refused, revision=1, fingerprint="f" * 64,
                    language="de",
                    page_url="https://www.example.de/über-uns;jsessionid=1" if n == 4
                    else "https://www.example.de/",
                    ip="203.0.113.0", browser=EVIL if n == 4 else "Firefox 133", os="Linux",
                )
            )  # fmt: skip
        await store.close()

    asyncio.run(fill())
    monkeypatch.setenv("CONSENTGATE_CONFIG", str(config))
    monkeypatch.delenv("CONSENTGATE_SECRET_KEYS", raising=False)
    return path


def exported(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert main(["export", *argv]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


# --- export -------------------------------------------------------------------------------


def test_export_jsonl_round_trips_into_records_that_verify(ledger: Path, tmp_path: Path) -> None:
    target = tmp_path / "export.jsonl"
    result = cli("export", "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "exported 5 record(s)\n", "no progress bar without a TTY"
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert set(rows[0]) == set(EXPORT_FIELDS)
    assert rows[4]["page_url"] == "https://www.example.de/über-uns;jsessionid=1"
    records = [ConsentRecord.from_json(row) for row in rows]
    assert all(r.computed_hash() == r.hash for r in records)
    assert verify_chain(records).ok


def test_export_csv_opens_in_german_excel(ledger: Path, tmp_path: Path) -> None:
    target = tmp_path / "export.csv"
    assert main(["export", "--format", "csv", "-o", str(target)]) == 0
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 BOM, or Excel reads cp1252"
    text = data[3:].decode("utf-8")
    assert text.endswith("\r\n") and text.count("\r\n") == 6
    header, *rows = csv.reader(io.StringIO(text, newline=""), delimiter=";")
    assert header == list(EXPORT_FIELDS) and len(rows) == 5
    first, last = (dict(zip(header, row, strict=True)) for row in (rows[0], rows[4]))
    assert first["granted"] == "facebook_pixel matomo youtube" and first["refused"] == ""
    assert last["page_url"] == "https://www.example.de/über-uns;jsessionid=1"
    assert last["browser"] == "'" + EVIL, "formula injection guarded"
    assert last["seq"] == "5" and last["consent_id"] == D
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export.csv")], "no temp left"


def test_export_filters(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def seqs(*argv: str) -> list[int]:
        return [row["seq"] for row in exported(capsys, *argv)]

    assert seqs("--since", "2026-10-31", "--until", "2026-11-02") == [2, 3]
    assert seqs("--since", "2026-11-02T20:00:00+00:00") == [5]
    assert seqs("--consent-id", A) == [1, 4]
    assert seqs("--consent-id", A, "--since", "2026-11-01") == [4]
    assert seqs("--service", "youtube") == [1, 2, 4, 5]
    assert seqs("--service", "youtube", "--consent-id", C) == []
    assert seqs("--consent-id", "unknown") == []


def test_export_of_an_unconfigured_service_is_a_usage_error(
    ledger: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["export", "--service", "legacy_chat"]) == 2
    err = capsys.readouterr().err
    assert "'legacy_chat' is not a configured service" in err
    assert "facebook_pixel, matomo, youtube" in err
    # Without settings (only --store) any service id goes.
    monkeypatch.delenv("CONSENTGATE_CONFIG")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no ./consentgate.toml either
    assert main(["--store", f"sqlite:///{ledger}", "export", "--service", "legacy_chat"]) == 0
    assert [json.loads(x)["seq"] for x in capsys.readouterr().out.splitlines()] == [5]


class FailingStore:
    """A ledger that goes away after ``after`` records of an export."""

    def __init__(self, store: SQLiteStore, after: int) -> None:
        self.inner = store
        self.after = after

    async def stored(self, **window: Any) -> AsyncIterator[StoredRecord]:
        count = 0
        async for record in self.inner.stored(**window):
            if count == self.after:
                raise StoreUnavailable("SQLite ledger: disk I/O error")
            count += 1
            yield record

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_failed_export_leaves_no_file(
    ledger: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(export_module, "CHUNK_ROWS", 1)  # some rows reach the file first
    monkeypatch.setattr(
        "consentgate.consent.cli.open_store",
        lambda url: FailingStore(SQLiteStore(url.removeprefix("sqlite:///")), after=3),
    )
    fresh, kept = tmp_path / "fresh.jsonl", tmp_path / "kept.jsonl"
    kept.write_text("the previous export\n", encoding="utf-8")
    assert main(["export", "-o", str(fresh)]) == 2
    assert main(["export", "--format", "csv", "-o", str(kept)]) == 2
    err = capsys.readouterr().err
    assert err.count("consentgate: SQLite ledger: disk I/O error\n") == 2
    assert "Traceback" not in err and "exported" not in err
    assert not fresh.exists()
    assert kept.read_text(encoding="utf-8") == "the previous export\n"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp left"


def test_export_to_a_missing_folder_is_exit_2(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "-o", str(tmp_path / "no" / "such.csv")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_export_shows_progress_only_on_a_terminal(ledger: Path) -> None:
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "consentgate.middleware.cli", "export", "--format", "csv"],
        stdout=subprocess.PIPE,
        stderr=secondary,
        stdin=subprocess.DEVNULL,
    )
    os.close(secondary)
    out, _ = process.communicate(timeout=60)
    terminal = read_all(primary)
    assert process.returncode == 0
    assert out.startswith(b"\xef\xbb\xbf") and out.count(b"\r\n") == 6, "stdout: CSV only"
    assert "5/5" in terminal and "100.0%" in terminal and "records/s" in terminal
    assert "exported 5 record(s)" in terminal


def read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode()


# --- verify -------------------------------------------------------------------------------


def test_verify_ok(ledger: Path) -> None:
    result = cli("verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "chain intact: 5 records\n"


def test_verify_names_the_tampered_record(ledger: Path) -> None:
    db = sqlite3.connect(ledger)
    with db:
        (record_id, body) = db.execute(
            "SELECT json_extract(body, '$.record_id'), body FROM records WHERE seq = 3"
        ).fetchone()
        db.execute(
            "UPDATE records SET body = ? WHERE seq = 3",
            (body.replace('"action":"custom"', '"action":"accept-all"'),),
        )
    db.close()
    result = cli("verify")
    assert result.returncode == 1
    assert "chain BROKEN: 1 problem(s) in 5 records" in result.stdout
    assert f"first: chain 0 seq 3 ({record_id}): content altered" in result.stdout


def test_verify_detects_altered_personal_fields(ledger: Path) -> None:
    db = sqlite3.connect(ledger)
    with db:
        db.execute(
            "UPDATE records SET personal = replace(personal, 'Linux', 'macOS') WHERE seq = 2"
        )
    db.close()
    result = cli("verify")
    assert result.returncode == 1
    assert "seq 2" in result.stdout and "personal fields altered" in result.stdout


def test_verify_shows_progress_on_a_terminal(ledger: Path) -> None:
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "consentgate.middleware.cli", "verify"],
        stdout=subprocess.PIPE,
        stderr=secondary,
        stdin=subprocess.DEVNULL,
    )
    os.close(secondary)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and out == b"chain intact: 5 records\n"
    terminal = read_all(primary)
    assert "checked 5/5" in terminal and "100.0%" in terminal


# --- stats --------------------------------------------------------------------------------


def stats(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["stats", "--json", *argv]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_stats_totals_with_categories_from_the_settings(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = stats(capsys)
    assert summary["totals"] == {
        "records": 5,
        "consent_ids": 4,
        "actions": {"accept-all": 1, "custom": 2, "reject-all": 1, "withdraw": 1},
    }
    assert {s: (v["category"], v["opt_in_rate"]) for s, v in summary["services"].items()} == {
        "facebook_pixel": ("marketing", 0.2),
        "legacy_chat": ("unknown", 1.0),
        "matomo": ("statistics", 0.6),
        "youtube": ("external_media", 0.75),
    }
    assert summary["categories"]["statistics"] == {"granted": 3, "offered": 5, "opt_in_rate": 0.6}


def test_stats_by_month_week_and_day(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def table(by: str) -> dict[str, tuple[int, float | None, float | None]]:
        periods = stats(capsys, "--by", by)["periods"]
        return {
            key: (p["decisions"], p["services"]["youtube"]["opt_in_rate"],
                  p["categories"]["statistics"]["opt_in_rate"])
            for key, p in periods.items()
        }  # fmt: skip

    assert table("month") == {"2026-10": (2, 0.5, 0.5), "2026-11": (3, 1.0, 0.6667)}
    assert table("week") == {"2026-W44": (3, 0.5, 0.6667), "2026-W45": (2, 1.0, 0.5)}
    assert table("day") == {
        "2026-10-30": (1, 1.0, 1.0),
        "2026-10-31": (1, 0.0, 0.0),
        "2026-11-01": (1, None, 1.0),
        "2026-11-02": (2, 1.0, 0.5),
    }
    window = stats(capsys, "--by", "month", "--since", "2026-11-01", "--until", "2026-11-02")
    assert list(window["periods"]) == ["2026-11"] and window["totals"]["records"] == 1


def test_stats_table(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--by", "month"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("5 decision(s) by 4 consent id(s)")
    assert "accept-all 1, custom 2, reject-all 1, withdraw 1" in lines[1]
    by_service = lines[lines.index("opt-in rate by service:") + 1 :]
    assert by_service[0].split() == [
        "period", "decisions", "facebook_pixel", "legacy_chat", "matomo", "youtube",
    ]  # fmt: skip
    assert by_service[1].split() == ["2026-10", "2", "50.0%", "–", "50.0%", "50.0%"]
    assert by_service[3].split() == ["total", "5", "20.0%", "100.0%", "60.0%", "75.0%"]
    assert "opt-in rate by category:" in lines


# --- purge, erase -------------------------------------------------------------------------


def test_purge_dry_run_then_real(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = sqlite3.connect(ledger)
    (anchor,) = db.execute("SELECT hash FROM records WHERE seq = 2").fetchone()
    db.close()
    assert main(["purge", "--dry-run", "--before", "2026-11-01"]) == 0
    out = capsys.readouterr().out
    assert "would purge 2 record(s) older than 2026-11-01T00:00:00+00:00" in out
    assert f"chain 0: anchor would become seq 2, hash {anchor}" in out
    assert len(exported(capsys)) == 5, "a dry run deletes nothing"
    assert main(["purge", "--before", "2026-11-01"]) == 0
    out = capsys.readouterr().out
    assert "purged 2 record(s)" in out and f"anchor is now seq 2, hash {anchor}" in out
    assert [r["seq"] for r in exported(capsys)] == [3, 4, 5]
    result = cli("verify")
    assert result.returncode == 0 and result.stdout == "chain intact: 3 records\n"


def test_purge_defaults_to_the_retention_period(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["purge"]) == 0
    cutoff = (datetime.now(UTC) - timedelta(days=1095)).date().isoformat()
    out = capsys.readouterr().out
    assert out.startswith(f"nothing to purge: no record older than {cutoff}")
    assert len(exported(capsys)) == 5


def test_purge_defaults_to_ledger_retention_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "recent.db"
    config = tmp_path / "retention.toml"
    config.write_text(
        f'store_url = "sqlite:///{path}"\n[ledger]\nretention_days = 30\n', encoding="utf-8"
    )
    now = datetime.now(UTC)

    async def fill() -> None:
        store = SQLiteStore(path)
        await store.append_many([draft(A, now - timedelta(days=days)) for days in (40, 31, 29, 1)])
        await store.close()

    asyncio.run(fill())
    monkeypatch.setenv("CONSENTGATE_CONFIG", str(config))
    assert main(["purge"]) == 0
    assert capsys.readouterr().out.startswith("purged 2 record(s) older than ")
    assert [r["seq"] for r in exported(capsys)] == [3, 4]


def draft(consent_id: str, moment: datetime) -> RecordDraft:
    return RecordDraft(
        consent_id=consent_id, time=moment, action="reject-all", granted=(),
        refused=("matomo",), revision=1, fingerprint="f" * 64, language="de",
        page_url="https://www.example.de/", ip="203.0.113.0", browser="Firefox", os="Linux",
    )  # fmt: skip


def test_erase_with_yes(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["erase", A, "--yes"]) == 0
    assert capsys.readouterr().out == f"erased the personal fields of 2 record(s) of {A}\n"
    rows = exported(capsys, "--consent-id", A)
    assert {(r["ip"], r["browser"], r["page_url"], r["salt"]) for r in rows} == {("", "", "", "")}
    assert all(r["redacted_at"] for r in rows)
    assert exported(capsys, "--consent-id", B)[0]["ip"] == "203.0.113.0", "others untouched"
    assert main(["erase", A, "--yes"]) == 0
    assert "of 0 record(s)" in capsys.readouterr().out
    result = cli("verify")
    assert result.returncode == 0, result.stdout


def test_erase_without_yes_and_without_a_terminal_is_exit_2(ledger: Path) -> None:
    result = cli("erase", A)
    assert result.returncode == 2
    assert "--yes" in result.stderr and "Traceback" not in result.stderr
    db = sqlite3.connect(ledger)
    assert db.execute("SELECT count(*) FROM records WHERE personal IS NULL").fetchone() == (0,)
    db.close()


def test_erase_of_an_unknown_consent_id_is_exit_1(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["erase", "z" * 22, "--yes"]) == 1
    assert "no records of consent id" in capsys.readouterr().err


@pytest.mark.parametrize(("typed", "status"), [(A, 0), (B, 1)])
def test_erase_on_a_terminal_asks_for_the_consent_id(ledger: Path, typed: str, status: int) -> None:
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "consentgate.middleware.cli", "erase", A],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    assert process.stderr is not None
    prompt = b""
    deadline = time.monotonic() + 30
    while b"Type the consent id" not in prompt and time.monotonic() < deadline:
        prompt += process.stderr.read1(4096)  # type: ignore[attr-defined]
    assert b"2 record(s)" in prompt
    os.write(primary, typed.encode() + b"\n")
    out, err = process.communicate(timeout=30)
    os.close(primary)
    assert process.returncode == status, err
    if status == 0:
        assert out == f"erased the personal fields of 2 record(s) of {A}\n".encode()
    else:
        assert b"not erased" in err
    db = sqlite3.connect(ledger)
    (erased,) = db.execute("SELECT count(*) FROM records WHERE personal IS NULL").fetchone()
    db.close()
    assert erased == (2 if status == 0 else 0)


# --- spool replay -------------------------------------------------------------------------


def test_spool_replay(ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spooled = tmp_path / "spool"
    later = T0 + timedelta(days=5)
    first, second = draft("e" * 22, later), draft("f" * 22, later + timedelta(hours=1))
    Spool(spooled).write([first, second, first])  # the first one twice (a retried write)
    assert main(["spool", "replay", "--directory", str(spooled)]) == 0
    assert capsys.readouterr().out == (
        f"replayed 3 decision(s) (1 already in the ledger), 0 remaining in {spooled}\n"
    )
    rows = exported(capsys)
    assert [(r["seq"], r["consent_id"]) for r in rows[5:]] == [(6, "e" * 22), (7, "f" * 22)]
    assert main(["spool", "replay", "--directory", str(spooled)]) == 0
    assert "replayed 0 decision(s)" in capsys.readouterr().out
    assert cli("verify").stdout == "chain intact: 7 records\n"


def test_spool_replay_reads_the_directory_from_the_settings_and_flags_corrupt_lines(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spooled = tmp_path / "from-settings"
    config = Path(os.environ["CONSENTGATE_CONFIG"])
    config.write_text(
        config.read_text(encoding="utf-8") + f'[ledger]\nspool_directory = "{spooled}"\n',
        encoding="utf-8",
    )
    Spool(spooled).write([draft("e" * 22, T0 + timedelta(days=5))])
    with (spooled / "spool.jsonl").open("ab") as spool:
        spool.write(b"0badc0de\t{torn")
    assert main(["spool", "replay"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("replayed 1 decision(s)")
    assert "1 spooled line(s) were not decisions" in err
    assert len(exported(capsys)) == 6


def test_spool_replay_needs_an_existing_directory(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["spool", "replay", "--directory", str(tmp_path / "typo")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


# --- settings and store errors ------------------------------------------------------------


def test_bad_config_is_exit_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("revision = 0\n", encoding="utf-8")
    assert main(["--config", str(bad), "verify"]) == 2
    assert "revision" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml"), "verify"]) == 2
    assert main(["--store", "ftp://example.de/ledger", "verify"]) == 2
    assert "scheme 'ftp' is not supported" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["spool"]) == 2


def test_unreachable_store_is_one_line_and_exit_2(tmp_path: Path) -> None:
    target = tmp_path / "export.csv"
    result = cli("--store", "redis://127.0.0.1:1/0", "export", "--format", "csv", "-o", str(target))
    assert result.returncode == 2
    assert result.stderr.startswith("consentgate: ") and result.stderr.count("\n") == 1
    assert "unavailable" in result.stderr
    assert not target.exists() and list(tmp_path.iterdir()) == []
    result = cli("--store", "redis://127.0.0.1:1/0", "export")
    assert result.returncode == 2 and result.stdout == "", "nothing written before the failure"


def test_installed_entry_point_runs(ledger: Path) -> None:
    result = cli("stats")
    assert result.returncode == 0, result.stderr
    assert "opt-in rate by service" in result.stdout
