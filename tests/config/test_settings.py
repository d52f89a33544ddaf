"""Settings files: presets, environment overrides and every kind of invalid file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consentgate.config import PRESET_IDS, ConfigError, Settings, preset_ids

KEY = "k" * 40
GOOD_TOML = """
revision = 3
prefix = "/_cg"
policy_url = "/datenschutz"

[cookie]
lifetime_days = 180

[services.matomo]
url = "https://stats.example.de"

[services.youtube]

[services.newsletter_widget]
name = "Newsletter"
category = "preferences"
description = { de = "Merkt sich die Anmeldung.", en = "Remembers the sign-up." }
privacy_policy_url = "/datenschutz"

[services.newsletter_widget.provider]
name = "Stadtwerke Musterstadt"
address = "Hauptstraße 1, 12345 Musterstadt"
country = "DE"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "consentgate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_presets_shipped_are_exactly_the_eight_services_in_order() -> None:
    assert preset_ids() == PRESET_IDS


@pytest.mark.parametrize("preset_id", PRESET_IDS)
def test_every_preset_loads_and_validates(preset_id: str) -> None:
    table: dict[str, Any] = {"url": "https://stats.example.de/"} if preset_id == "matomo" else {}
    settings = Settings.from_mapping({"secret_keys": [KEY], "services": {preset_id: table}})
    service = settings.services[preset_id]
    assert service.id == preset_id
    assert service.description.de and service.description.en
    assert service.privacy_policy_url.startswith("https://")
    assert service.hosts or service.expanded_url_patterns(), "a preset must say where it loads from"
    assert service.signatures or service.category == "external_media"
    assert service.category != "necessary"


def cookie(settings: Settings, service_id: str, name: str) -> float | None:
    matches = [c for c in settings.services[service_id].cookies if c.matches(name)]
    assert matches, f"{service_id} has no cookie {name}"
    return matches[0].lifetime_days


def test_preset_facts(settings: Settings) -> None:
    """Facts the seed privacy policies and the vendors' documentation state."""
    assert cookie(settings, "matomo", "_pk_id.1.abcd") == 395
    assert cookie(settings, "matomo", "matomo_ignore") == 730
    assert settings.services["matomo"].honors_dnt
    assert 30 in [c.lifetime_days for c in settings.services["google_ads"].cookies]
    youtube = settings.services["youtube"]
    assert {"www.youtube-nocookie.com", "youtube-nocookie.com", "*.ytimg.com"} <= set(youtube.hosts)
    assert youtube.category == settings.services["google_maps"].category == "external_media"
    assert youtube.load_label is not None and youtube.load_label.de == "Video abspielen"
    maps = settings.services["google_maps"]
    assert maps.load_label is not None and maps.load_label.de == "Karte anzeigen"
    assert "fbq(" in settings.services["facebook_pixel"].signatures
    assert any("emos" in s for s in settings.services["econda"].signatures)
    assert any(
        "_etracker" in s or "_etLoader" in s for s in settings.services["etracker"].signatures
    )
    assert set(settings.services["google_ads"].consent_mode) >= {
        "ad_storage",
        "ad_user_data",
        "ad_personalization",
    }
    assert "stats.example.de/matomo.js" in settings.services["matomo"].expanded_url_patterns()


def test_from_file_reads_toml_presets_and_custom_services(tmp_path: Path) -> None:
    settings = Settings.from_file(
        write(tmp_path, GOOD_TOML), environ={"CONSENTGATE_SECRET_KEYS": KEY}
    )
    assert settings.revision == 3
    assert settings.prefix == "/_cg"
    assert settings.cookie.lifetime_days == 180
    assert settings.services["matomo"].url == "https://stats.example.de/"
    assert settings.services["newsletter_widget"].category == "preferences"
    assert settings.optional_service_ids == {"matomo", "youtube", "newsletter_widget"}
    assert settings.store_url == "sqlite:///./consentgate.db"
    assert settings.languages == ["de", "en"]


def test_defaults_match_the_documented_ones(tmp_path: Path) -> None:
    settings = Settings.from_file(write(tmp_path, ""), environ={"CONSENTGATE_SECRET_KEYS": KEY})
    assert (settings.revision, settings.prefix, settings.cookie.lifetime_days) == (
        1,
        "/_consent",
        365,
    )
    assert settings.cookie.secure == "auto"
    assert (settings.ip.ipv4_prefix, settings.ip.ipv6_prefix) == (24, 48)
    assert settings.texts["de"].accept_all == "Alle akzeptieren"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    environ = {
        "CONSENTGATE_SECRET_KEYS": f"{'n' * 40}, {'o' * 40}",
        "CONSENTGATE_REVISION": "7",
        "CONSENTGATE_STORE_URL": "sqlite:////var/lib/consentgate/ledger.db",
        "CONSENTGATE_COOKIE__SECURE": "true",
        "CONSENTGATE_SERVICES__MATOMO__URL": "https://other.example.de/",
        "CONSENTGATE_CONFIG": "ignored: names the file, not a setting",
        "UNRELATED": "x",
    }
    settings = Settings.from_file(write(tmp_path, GOOD_TOML), environ=environ)
    assert [k.get_secret_value() for k in settings.secret_keys] == ["n" * 40, "o" * 40]
    assert settings.revision == 7
    assert settings.store_url == "sqlite:////var/lib/consentgate/ledger.db"
    assert settings.cookie.secure is True
    assert settings.services["matomo"].url == "https://other.example.de/"


def test_texts_can_be_overridden_per_key(tmp_path: Path) -> None:
    text = '[texts.de]\ntitle = "Ihre Privatsphäre"\n'
    settings = Settings.from_file(write(tmp_path, text), environ={"CONSENTGATE_SECRET_KEYS": KEY})
    assert settings.texts["de"].title == "Ihre Privatsphäre"
    assert settings.texts["de"].reject_all == "Alle ablehnen"


BAD_CASES = {
    "missing_secret": ("", {}, "secret_keys", "CONSENTGATE_SECRET_KEYS"),
    "short_secret": ("", {"CONSENTGATE_SECRET_KEYS": "short"}, "secret_keys", "32"),
    "matomo_without_url": ("[services.matomo]\n", None, "services.matomo", "needs `url`"),
    "matomo_bad_url": (
        '[services.matomo]\nurl = "stats.example.de"\n',
        None,
        "services.matomo.url",
        "absolute http(s) URL",
    ),
    "custom_service_incomplete": (
        '[services.chatbot]\nname = "Chat"\n',
        None,
        "services.chatbot.category",
        "not a preset",
    ),
    "unknown_key": ("colour = 'blue'\n", None, "colour", "unknown key"),
    "unknown_service_key": (
        "[services.youtube]\nautoplay = true\n",
        None,
        "services.youtube.autoplay",
        "unknown key",
    ),
    "bad_category": (
        '[services.youtube]\ncategory = "fun"\n',
        None,
        "services.youtube.category",
        "'external_media'",
    ),
    "bad_host": (
        '[services.youtube]\nhosts = ["https://www.youtube.com/embed"]\n',
        None,
        "services.youtube.hosts",
        "no scheme, no path",
    ),
    "revision_zero": ("revision = 0\n", None, "revision", "greater than or equal to 1"),
    "revision_text": ('revision = "two"\n', None, "revision", "valid integer"),
    "prefix_without_slash": ('prefix = "consent"\n', None, "prefix", "pattern"),
    "lifetime_too_long": (
        "[cookie]\nlifetime_days = 99999\n",
        None,
        "cookie.lifetime_days",
        "3650",
    ),
    "secure_not_bool": ('[cookie]\nsecure = "yes"\n', None, "cookie.secure", '"auto"'),
    "language_unknown": ('languages = ["fr"]\n', None, "languages.0", "'de' or 'en'"),
    "language_twice": ('languages = ["de", "de"]\n', None, "languages", "twice"),
    "services_not_table": ('services = "all"\n', None, "services", "table"),
    "service_not_table": ("[services]\nyoutube = 1\n", None, "services.youtube", "table"),
    "service_id_mismatch": (
        '[services.youtube]\nid = "vimeo"\n',
        None,
        "services.youtube.id",
        "table name",
    ),
    "bad_service_id": (
        '[services."Bad-Id"]\nname = "x"\n',
        None,
        "services.Bad-Id",
        "pattern",
    ),
    "store_url_unknown_scheme": (
        'store_url = "mysql://root:hunter2@db/consent"\n',
        None,
        "store_url",
        "scheme 'mysql' is not supported",
    ),
    "store_url_sqlite_without_file": (
        'store_url = "sqlite://"\n',
        None,
        "store_url",
        "names a file",
    ),
    "not_toml": ("revision = = 1\n", None, "", "not valid TOML"),
    "policy_url_javascript": (
        'policy_url = "javascript:alert(document.cookie)"\n',
        None,
        "policy_url",
        "use https://... or a path",
    ),
    "privacy_url_scheme_relative": (
        '[services.youtube]\nprivacy_policy_url = "//evil.example/x"\n',
        None,
        "services.youtube.privacy_policy_url",
        "use https://... or a path",
    ),
    "env_bad_value": (
        "",
        {"CONSENTGATE_SECRET_KEYS": KEY, "CONSENTGATE_REVISION": "-1"},
        "revision",
        "CONSENTGATE_REVISION",
    ),
}


@pytest.mark.parametrize(
    ("text", "environ", "key", "hint"), list(BAD_CASES.values()), ids=list(BAD_CASES)
)
def test_invalid_settings_fail_naming_file_key_and_fix(
    tmp_path: Path, text: str, environ: dict[str, str] | None, key: str, hint: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Settings.from_file(
            path, environ={"CONSENTGATE_SECRET_KEYS": KEY} if environ is None else environ
        )
    message = str(caught.value)
    assert str(path) in message
    assert caught.value.source == str(path)
    keys = [p.key for p in caught.value.problems]
    assert any(k == key or k.startswith(key + ".") for k in keys), keys
    assert hint in message
    assert "hunter2" not in message, "store URLs may carry passwords"


def test_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found; pass --config"):
        Settings.from_file(tmp_path / "nope.toml", environ={})


def test_secrets_never_appear_in_repr_or_errors(tmp_path: Path) -> None:
    secret = "S3cr3t-" + "z" * 40
    settings = Settings.from_file(write(tmp_path, ""), environ={"CONSENTGATE_SECRET_KEYS": secret})
    assert secret not in repr(settings)
    assert secret not in str(settings)
    assert secret not in settings.model_dump_json()
    short = "tiny-secret"
    with pytest.raises(ConfigError) as caught:
        Settings.from_file(write(tmp_path, ""), environ={"CONSENTGATE_SECRET_KEYS": short})
    assert short not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('dpo = "{token}"', id="token-in-place-of-the-dpo-table"),
        pytest.param('[dpo]\ntoken = "{token}"\nextra = 1', id="token-beside-an-error"),
        pytest.param('[dpo]\ntoken = ["{token}"]', id="token-of-the-wrong-type"),
    ],
)
def test_dpo_token_never_appears_in_errors(tmp_path: Path, text: str) -> None:
    token = "dpo-" + "q" * 40
    with pytest.raises(ConfigError) as caught:
        Settings.from_file(
            write(tmp_path, text.format(token=token)),
            environ={"CONSENTGATE_SECRET_KEYS": KEY},
        )
    assert token not in str(caught.value)
