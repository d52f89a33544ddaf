"""The consentgate command: export, verify and stats against a real ledger file."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consentgate.consent import RecordDraft
from consentgate.consent.sqlite import SQLiteStore
from consentgate.middleware.cli import main

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A settings file and a ledger holding four decisions by three visitors."""
    path = tmp_path / "ledger.db"
    config = tmp_path / "consentgate.toml"
    config.write_text(
        f'store_url = "sqlite:///{path}"\n[services.matomo]\nurl = "https://s.example.de/"\n'
        "[services.youtube]\n[services.facebook_pixel]\n",
        encoding="utf-8",
    )
    decisions = [
        ("a" * 22, "accept-all", ("facebook_pixel", "matomo", "youtube"), ()),
        ("b" * 22, "reject-all", (), ("facebook_pixel", "matomo", "youtube")),
        ("c" * 22, "custom", ("matomo",), ("facebook_pixel", "youtube")),
        ("a" * 22, "withdraw", ("youtube",), ("facebook_pixel", "matomo")),
    ]

    async def fill() -> None:
        store = SQLiteStore(path)
        for day, (cid, action, granted, refused) in enumerate(decisions):
            await store.append(
                RecordDraft(
                    consent_id=cid, time=T0 + timedelta(days=day), action=action,  # type: ignore[arg-type]
                    granted=granted, refused=refused, revision=1, fingerprint="f" * 64,
                    language="de", page_url="https://example.de/", ip="203.0.113.0",
                    browser="Firefox", os="Linux",
                )
            )  # fmt: skip
        await store.close()

    asyncio.run(fill())
    monkeypatch.setenv("CONSENTGATE_CONFIG", str(config))
    monkeypatch.delenv("CONSENTGATE_SECRET_KEYS", raising=False)
    return path


def test_export_jsonl_needs_no_signing_key(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[3]["action"] == "withdraw" and rows[3]["granted"] == ["youtube"]
    assert "exported 4 record(s)" in err


def test_export_filters_by_time_and_consent_id(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--since", "2026-11-02", "--until", "2026-11-04"]) == 0
    assert [json.loads(x)["seq"] for x in capsys.readouterr().out.splitlines()] == [2, 3]
    assert main(["export", "--consent-id", "a" * 22]) == 0
    assert [json.loads(x)["action"] for x in capsys.readouterr().out.splitlines()] == [
        "accept-all",
        "withdraw",
    ]


def test_export_csv_to_file(ledger: Path, tmp_path: Path) -> None:
    target = tmp_path / "export.csv"
    assert main(["export", "--format", "csv", "-o", str(target)]) == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert len(rows) == 4
    assert rows[0]["granted"] == "facebook_pixel matomo youtube"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export.csv")], "no temp left"


def test_verify_ok_then_broken(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify"]) == 0
    assert "chain intact: 4 records" in capsys.readouterr().out
    db = sqlite3.connect(ledger)
    with db:
        db.execute("DELETE FROM records WHERE seq = 2")
    db.close()
    assert main(["verify"]) == 1
    assert "chain BROKEN" in capsys.readouterr().out


def test_stats_uses_each_visitors_latest_decision(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 4 and summary["visitors"] == 3
    assert summary["actions"] == {"accept-all": 1, "custom": 1, "reject-all": 1, "withdraw": 1}
    assert summary["opt_in_rate"] == {"facebook_pixel": 0.0, "matomo": 0.3333, "youtube": 0.3333}
    assert main(["stats"]) == 0
    assert "matomo" in capsys.readouterr().out


def test_bad_config_is_exit_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("revision = 0\n", encoding="utf-8")
    assert main(["--config", str(bad), "verify"]) == 2
    assert "revision" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml"), "verify"]) == 2
    assert main(["--store", "redis://localhost/0", "verify"]) == 2
    assert main([]) == 2


def test_installed_entry_point_runs(ledger: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "consentgate.middleware.cli", "verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "chain intact" in result.stdout
