"""``consentgate logs sweep``: the cron/systemd way to expire access logs."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from consentgate.middleware.cli import main

KEY = "k" * 40


def make_files(directory: Path, today: date, ages: range) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for age in ages:
        (directory / f"access-{(today - timedelta(days=age)).isoformat()}.log").write_text("x\n")
    (directory / "README.txt").write_text("not a log\n")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "consentgate.toml"
    path.write_text(
        f'secret_keys = ["{KEY}"]\n'
        f'store_url = "sqlite:///{tmp_path}/ledger.db"\n'
        "[access_log]\n"
        f'directory = "{tmp_path}/logs"\n'
        "retention_days = 30\n"
    )
    return path


def test_sweep_uses_the_settings_and_now(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = tmp_path / "logs"
    make_files(logs, date(2026, 11, 21), range(0, 40))
    assert main(["--config", str(config), "logs", "sweep", "--now", "2026-11-21T23:59"]) == 0
    left = sorted(os.listdir(logs))
    assert left[0] == "README.txt"
    assert left[1] == "access-2026-10-22.log"  # 30 days before, kept
    assert len(left) == 1 + 31
    out = capsys.readouterr()
    assert out.out.count("deleted ") == 9
    assert "deleted 9 file(s)" in out.err


def test_dry_run_deletes_nothing(config: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    make_files(logs, date(2026, 11, 21), range(0, 40))
    before = sorted(os.listdir(logs))
    args = ["--config", str(config), "logs", "sweep", "--now", "2026-11-21", "--dry-run"]
    assert main(args) == 0
    assert sorted(os.listdir(logs)) == before


def test_flags_override_the_settings(tmp_path: Path) -> None:
    """Directory and retention on the command line: no settings file needed."""
    logs = tmp_path / "elsewhere"
    make_files(logs, date(2026, 11, 21), range(0, 100))
    args = ["--config", str(tmp_path / "missing.toml"), "logs", "sweep"]
    args += ["--directory", str(logs), "--retention-days", "90", "--now", "2026-11-21"]
    assert main(args) == 0
    assert len(os.listdir(logs)) == 1 + 91


def test_a_bad_date_is_named(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(config), "logs", "sweep", "--now", "gestern"])
    assert exit_.value.code == 2
    assert "'gestern' is not a date; use YYYY-MM-DD" in capsys.readouterr().err


def test_zero_retention_is_refused(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--config", str(config), "logs", "sweep", "--retention-days", "0", "--directory", "x"]
    assert main(args) == 2
    assert "--retention-days 0 must be between 1 and 3650" in capsys.readouterr().err


def test_without_a_directory_it_says_how_to_set_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'secret_keys = ["{KEY}"]\n')
    assert main(["--config", str(path), "logs", "sweep"]) == 2
    assert "[access_log] directory" in capsys.readouterr().err


def test_installed_command_runs(config: Path, tmp_path: Path) -> None:
    make_files(tmp_path / "logs", date.today(), range(0, 35))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "consentgate.middleware.cli",
            "--config",
            str(config),
            "logs",
            "sweep",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "deleted" in done.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(["--retention-days", "100000000"], "between 1 and 3650", id="huge"),
        pytest.param(["--now", "0001-01-05"], "is before year 1", id="year-one"),
    ],
)
def test_out_of_range_values_are_errors_not_tracebacks(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--config", str(tmp_path / "none.toml"), "logs", "sweep", "--directory"]
    args += [str(tmp_path), "--retention-days", "30", *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err
