"""``consentgate check``: every problem of a settings file, each with a fix, secrets never shown."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from consentgate.config.check import Finding, check_file, format_findings, run
from consentgate.middleware.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SETTINGS = ROOT / "example_site" / "consentgate.toml"

#: A signing key as the README tells operators to make one (fixed, so failures reproduce).
KEY = "9f2c4e7a1b3d5f60718293a4b5c6d7e8f9a0b1c2d3e4f5061728394a5b6c7d8e"
ENV = {"CONSENTGATE_SECRET_KEYS": KEY}
#: An absolute SQLite path: a relative one (the default too) is a warning of its own.
STORE = 'store_url = "sqlite:////var/lib/consentgate/consentgate.db"\n'
GOOD = STORE + "[services.youtube]\n"
NEWSLETTER = """
[services.newsletter]
name = "Newsletter"
category = "preferences"
description = { de = "Merkt sich die Anmeldung.", en = "Remembers the sign-up." }
privacy_policy_url = "/datenschutz"

[services.newsletter.provider]
name = "Stadtwerke Musterstadt"
address = "Hauptstraße 1, 12345 Musterstadt"
country = "DE"
"""


def write(tmp_path: Path, text: str, name: str = "consentgate.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check(path: Path, environ: dict[str, str], *, strict: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    status = run(str(path), strict=strict, environ=environ, out=out)
    return status, out.getvalue()


def test_example_site_file_has_only_the_relative_ledger_warning() -> None:
    """The example site passes; its one warning is right for a real deployment.

    The demo keeps its ledger next to where `make demo` runs (the file says so), but an
    operator copying that line into a systemd service would get a fresh, empty ledger in
    whatever directory the server starts in.
    """
    findings = check_file(EXAMPLE_SETTINGS, ENV)
    assert [(f.severity, f.key) for f in findings] == [("warning", "store_url")]
    assert "'./consentgate-demo.db' is relative" in findings[0].message
    status, out = check(EXAMPLE_SETTINGS, ENV)
    assert status == 0
    assert out.startswith(f"{EXAMPLE_SETTINGS}: 1 warning\n")


def test_example_site_file_without_the_key_is_an_error() -> None:
    assert [(f.severity, f.key) for f in check_file(EXAMPLE_SETTINGS, {})] == [
        ("error", "secret_keys"),
        ("warning", "store_url"),
    ]


def test_good_minimal_file_has_no_problems(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert check(path, ENV) == (0, f"{path}: no problems found\n")


@dataclass(frozen=True)
class Case:
    toml: str
    severity: str
    key: str
    fix: str
    """A fragment of the fix."""
    status: int
    env: dict[str, str] = field(default_factory=lambda: dict(ENV))
    message: str = ""
    """A fragment of the message (the current value, where it is safe to show)."""


CASES = {
    "missing_secret": Case(
        GOOD,
        "error",
        "secret_keys",
        'python -c "import secrets; print(secrets.token_hex(32))" and set CONSENTGATE_SECRET_KEYS',
        1,
        env={},
        message="no signing key is set",
    ),
    "empty_secret_variable": Case(
        GOOD, "error", "secret_keys", "token_hex(32)", 1, env={"CONSENTGATE_SECRET_KEYS": ""}
    ),
    "secret_in_file": Case(
        f'secret_keys = ["{KEY}"]\n' + GOOD,
        "warning",
        "secret_keys",
        "set CONSENTGATE_SECRET_KEYS in the server's environment",
        0,
        env={},
        message="written in the settings file",
    ),
    "short_secret_refused_by_the_model": Case(
        GOOD,
        "error",
        "secret_keys",
        "change or unset CONSENTGATE_SECRET_KEYS: generate one with python -c",
        1,
        env={"CONSENTGATE_SECRET_KEYS": "too-short-key"},
        message="signing key #1 is too short",
    ),
    "weak_secret": Case(
        GOOD,
        "error",
        "secret_keys",
        "token_hex(32)",
        1,
        env={"CONSENTGATE_SECRET_KEYS": f"{KEY},{'changeme' * 5}"},
        message="signing key #2 repeats a few characters",
    ),
    "matomo_without_url": Case(
        STORE + "[services.matomo]\n",
        "error",
        "services.matomo",
        'url = "https://matomo.example.org/"',
        1,
        message="self-hosted",
    ),
    "csp_custom_service_without_hosts": Case(
        STORE + '[csp]\nmode = "enforce"\n' + NEWSLETTER,
        "error",
        "services.newsletter.hosts",
        'hosts = ["cdn.example.com"',
        1,
        message='[csp] mode is "enforce"',
    ),
    "csp_preset_with_hosts_removed": Case(
        STORE + '[csp]\nmode = "report-only"\n[services.google_ads]\nhosts = []\n'
        "url_patterns = []\n",
        "error",
        "services.google_ads.hosts",
        "add the hosts",
        1,
    ),
    "access_log_kept_longer_than_90_days": Case(
        GOOD + "[access_log]\nretention_days = 120\n",
        "warning",
        "access_log.retention_days",
        "retention_days = 90 or less",
        0,
        message="120 days is longer than the 90 days",
    ),
    "access_log_kept_under_a_week": Case(
        GOOD + "[access_log]\nretention_days = 3\n",
        "warning",
        "access_log.retention_days",
        "between 7 and 90",
        0,
        message="3 day(s)",
    ),
    "ledger_kept_under_a_year": Case(
        GOOD + "[ledger]\nretention_days = 100\n",
        "warning",
        "ledger.retention_days",
        "retention_days = 1095",
        0,
        message="§ 195 BGB",
    ),
    "ledger_kept_over_ten_years": Case(
        GOOD + "[ledger]\nretention_days = 5000\n",
        "warning",
        "ledger.retention_days",
        "retention_days = 1095",
        0,
        message="Art. 5(1)(e) GDPR",
    ),
    "cookie_longer_than_13_months": Case(
        GOOD + "[cookie]\nlifetime_days = 730\n",
        "warning",
        "cookie.lifetime_days",
        "lifetime_days = 365 or less",
        0,
        message="730 days is longer than 13 months",
    ),
    "cookie_lifetime_beyond_the_model_bound": Case(
        GOOD + "[cookie]\nlifetime_days = 5000\n",
        "error",
        "cookie.lifetime_days",
        "a whole number from 1 to 3650",
        1,
        message="(got 5000)",
    ),
    "relative_sqlite_ledger": Case(
        'store_url = "sqlite:///data/ledger.db"\n[services.youtube]\n',
        "warning",
        "store_url",
        'store_url = "sqlite:////',
        0,
        message="'data/ledger.db' is relative",
    ),
    "default_sqlite_ledger": Case(
        "[services.youtube]\n",
        "warning",
        "store_url",
        "use an absolute path",
        0,
        message="store_url is not set",
    ),
    "dpo_token_in_file": Case(
        GOOD + f'[dpo]\ntoken = "{"t0K" * 12}"\n',
        "warning",
        "dpo.token",
        "CONSENTGATE_DPO__TOKEN",
        0,
    ),
    "dpo_token_too_short": Case(
        GOOD,
        "error",
        "dpo.token",
        "set CONSENTGATE_DPO__TOKEN",
        1,
        env={**ENV, "CONSENTGATE_DPO__TOKEN": "short-token"},
    ),
    "store_url_with_password_in_file": Case(
        'store_url = "redis://:hunter2hunter2@redis.internal:6379/0"\n',
        "warning",
        "store_url",
        "CONSENTGATE_STORE_URL",
        0,
    ),
    "misspelt_key": Case(
        GOOD + "[cookie]\nsecur = true\n",
        "error",
        "cookie.secur",
        "did you mean secure?",
        1,
    ),
    "preset_outside_services": Case(
        GOOD + "[matomo]\n", "error", "matomo", "write [services.matomo]", 1
    ),
    "misspelt_preset": Case(
        STORE + "[services.youtbe]\n",
        "error",
        "services.youtbe",
        "did you mean the preset 'youtube'?",
        1,
        message="must declare name, provider",
    ),
    "service_table_name_not_allowed": Case(
        STORE + '[services.Mein-Dienst]\nname = "x"\n',
        "error",
        "services.Mein-Dienst",
        "e.g. [services.newsletter]",
        1,
        message="(got 'Mein-Dienst')",
    ),
    "texts_for_a_language_without_texts": Case(
        GOOD + '[texts.fr]\ntitle = "Votre vie privée"\n',
        "error",
        "texts.fr",
        "[texts.de] or [texts.en]",
        1,
    ),
    "custom_service_missing_fields": Case(
        STORE + '[services.newsletter]\nname = "Newsletter"\n',
        "error",
        "services.newsletter",
        'add to [services.newsletter]: provider = { name = "',
        1,
        message="must declare provider, category, description, privacy_policy_url",
    ),
    "custom_service_without_english_text": Case(
        STORE + NEWSLETTER.replace(', en = "Remembers the sign-up."', ""),
        "error",
        "services.newsletter.description",
        'or set languages = ["de"]',
        1,
        message="has no English text",
    ),
    "proxy_list_trusting_everyone": Case(
        GOOD + '[ip]\ntrusted_proxies = ["0.0.0.0/0"]\n',
        "error",
        "ip.trusted_proxies",
        "list only your proxies' addresses",
        1,
        message="'0.0.0.0/0' trusts every sender",
    ),
    "blank_access_log_directory": Case(
        GOOD + '[access_log]\ndirectory = " "\n',
        "error",
        "access_log.directory",
        "write it like 'logs' or '/var/log/mysite'",
        1,
        message="(got ' ')",
    ),
    "value_not_allowed": Case(
        GOOD + '[csp]\nmode = "on"\n',
        "error",
        "csp.mode",
        'one of "off", "report-only", "enforce"',
        1,
        message="(got 'on')",
    ),
    "bad_value_from_the_environment": Case(
        GOOD,
        "error",
        "cookie.secure",
        "change or unset CONSENTGATE_COOKIE__SECURE",
        1,
        env={**ENV, "CONSENTGATE_COOKIE__SECURE": "maybe"},
        message="[from environment variable CONSENTGATE_COOKIE__SECURE]",
    ),
    "service_id_differs_from_table": Case(
        GOOD + '[services.google_maps]\nid = "maps"\n',
        "error",
        "services.google_maps.id",
        "remove id from [services.google_maps]",
        1,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_kind_of_bad_file(case: Case, tmp_path: Path) -> None:
    path = write(tmp_path, case.toml)
    findings = check_file(path, case.env)
    assert len(findings) == 1, findings
    finding = findings[0]
    assert (finding.severity, finding.key) == (case.severity, case.key)
    assert case.fix in finding.fix
    assert case.message in finding.message
    status, out = check(path, case.env)
    assert status == case.status
    assert f"{case.severity:<8} {case.key}: " in out


@pytest.mark.parametrize(
    "table",
    [
        "[access_log]\nretention_days = 90",
        "[access_log]\nretention_days = 7",
        "[ledger]\nretention_days = 365",
        "[ledger]\nretention_days = 3650",
        "[cookie]\nlifetime_days = 395",
        '[csp]\nmode = "enforce"\n[services.google_tag_manager]\n[services.matomo]\n'
        'url = "https://stats.example.de/"',
        '[csp]\nmode = "enforce"\n'
        + NEWSLETTER.replace('"preferences"', '"necessary"').replace(
            "Merkt sich die Anmeldung.", "Hält die Anmeldung."
        ),
    ],
    ids=[
        "log_90",
        "log_7",
        "ledger_365",
        "ledger_3650",
        "cookie_395",
        "csp_url_patterns",
        "csp_necessary_first_party",
    ],
)
def test_limits_themselves_are_fine(table: str, tmp_path: Path) -> None:
    """The bounds are inclusive; services known by URL patterns satisfy the CSP check."""
    assert check_file(write(tmp_path, GOOD + table + "\n"), ENV) == []


def test_every_independent_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        STORE
        + """
revison = 2
[cookie]
secure = "yes"
lifetime_days = 730
[access_log]
retention_days = 120
[csp]
mode = "enforce"
[services.matomo]
[services.youtube]
hosts = ["https://www.youtube.com/embed"]
"""
        + NEWSLETTER,
    )
    findings = check_file(path, {})
    assert {(f.severity, f.key) for f in findings} == {
        ("error", "secret_keys"),
        ("error", "revison"),
        ("error", "cookie.secure"),
        ("error", "services.matomo"),
        ("error", "services.youtube.hosts"),
        ("error", "services.newsletter.hosts"),
        ("warning", "cookie.lifetime_days"),
        ("warning", "access_log.retention_days"),
    }
    assert len(findings) == 8
    assert [f.severity for f in findings] == ["error"] * 6 + ["warning"] * 2
    status, out = check(path, {})
    assert status == 1
    assert out.startswith(f"{path}: 6 errors, 2 warnings\n")


def test_malformed_services_do_not_hide_the_other_problems(tmp_path: Path) -> None:
    """The loader stops at `services = 3` before validating; the check goes on."""
    path = write(tmp_path, STORE + "services = 3\n[cookie]\nlifetime_days = 0\n")
    findings = check_file(path, ENV)
    assert [(f.key, f.fix) for f in findings] == [
        ("services", "write one table per entry, e.g. [services.<name>]"),
        (
            "cookie.lifetime_days",
            "use a whole number from 1 to 3650 for lifetime_days in "
            "[cookie], e.g. lifetime_days = 365",
        ),
    ]


def test_output_format(tmp_path: Path) -> None:
    findings = [
        Finding("error", "secret_keys", "no signing key is set", "set it"),
        Finding("warning", "", "about the file", "do this"),
    ]
    assert format_findings("consentgate.toml", findings) == (
        "consentgate.toml: 1 error, 1 warning\n"
        "error    secret_keys: no signing key is set\n"
        "         fix: set it\n"
        "warning  about the file\n"
        "         fix: do this\n"
    )


def test_strict_turns_warnings_into_failure(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "[cookie]\nlifetime_days = 730\n")
    assert check(path, ENV)[0] == 0
    assert check(path, ENV, strict=True)[0] == 1
    assert check(write(tmp_path, GOOD, "good.toml"), ENV, strict=True)[0] == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "file not found; pass the path"),
        ("revision = \n", "not valid TOML"),
        (b"revision = 1 # \xff\n", "not UTF-8"),
        ("directory", "is a directory"),
    ],
    ids=["not_found", "bad_toml", "not_utf8", "directory"],
)
def test_unreadable_file_exits_2(
    content: str | bytes | None, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "consentgate.toml"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    status, out = check(path, ENV)
    assert status == 2
    assert out.startswith(f"{path}: ")
    assert expected in out


def test_path_falls_back_to_the_variable_then_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = write(tmp_path, GOOD, "named.toml")
    out = io.StringIO()
    assert run(None, environ={**ENV, "CONSENTGATE_CONFIG": str(named)}, out=out) == 0
    assert out.getvalue() == f"{named}: no problems found\n"

    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert run(None, environ=ENV, out=out) == 2
    assert out.getvalue().startswith("consentgate.toml: file not found")
    write(tmp_path, GOOD)
    out = io.StringIO()
    assert run(None, environ=ENV, out=out) == 0
    assert out.getvalue() == "consentgate.toml: no problems found\n"


SECRET_KEY = "Zq8vN3xW1pL6tR9yB4mK7cF2hJ5gD0sA"  # 32 characters, so the model accepts it
DPO_TOKEN = "dpo-token-Ux7Qe2Wr9Ty4Io1Pa6Sd3Fg8Hj5Kl0"
PASSWORD = "redis-pass-Mn4Bv7Cx1Zl"


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        (
            f'secret_keys = ["{SECRET_KEY}"]\nstore_url = "redis://:{PASSWORD}@r:6379/0"\n'
            f'[dpo]\ntoken = "{DPO_TOKEN}"\n',
            {},
        ),
        # Refused values: a token too short, a key too short, a token where a table belongs.
        (f'[dpo]\ntoken = "{DPO_TOKEN[:20]}"\n', {"CONSENTGATE_SECRET_KEYS": SECRET_KEY[:20]}),
        (f'dpo = "{DPO_TOKEN}"\n', {"CONSENTGATE_SECRET_KEYS": f"{SECRET_KEY},{'xy' * 20}"}),
        (f"secret_keys = {SECRET_KEY!r}\n", {"CONSENTGATE_DPO__TOKEN": DPO_TOKEN}),
        (f'store_url = "rediss+nope://:{PASSWORD}@r/0"\n', {"CONSENTGATE_SECRET_KEYS": "x"}),
    ],
    ids=["valid_secrets_in_file", "too_short", "token_as_table", "keys_as_string", "bad_url"],
)
def test_secrets_are_never_printed(toml: str, env: dict[str, str], tmp_path: Path) -> None:
    path = write(tmp_path, toml)
    status, out = check(path, env)
    assert status in (0, 1)
    assert "fix:" in out
    for secret in (SECRET_KEY, SECRET_KEY[:20], DPO_TOKEN, DPO_TOKEN[:20], PASSWORD, "xy" * 20):
        assert secret not in out


def test_check_command_of_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CONSENTGATE_SECRET_KEYS", "CONSENTGATE_CONFIG", "CONSENTGATE_DPO__TOKEN"):
        monkeypatch.delenv(name, raising=False)
    path = write(tmp_path, GOOD + "[cookie]\nlifetime_days = 730\n")

    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: 1 error, 1 warning\n")
    assert "error    secret_keys: no signing key is set" in out

    monkeypatch.setenv("CONSENTGATE_SECRET_KEYS", KEY)
    assert main(["check", str(path)]) == 0
    assert main(["--config", str(path), "check", "--strict"]) == 1
    assert capsys.readouterr().out.count("warning  cookie.lifetime_days: 730 days") == 2

    monkeypatch.setenv("CONSENTGATE_CONFIG", str(tmp_path / "missing.toml"))
    assert main(["check"]) == 2
    assert "missing.toml: file not found" in capsys.readouterr().out
