"""The generated cookie declaration: facts per preset, escaping, valid HTML, fingerprint,
operator overrides, the access-log paragraph and the ``consentgate declaration`` command."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import html5lib
import pytest

from consentgate.config import PRESET_IDS, ConfigError, Language, Service, Settings
from consentgate.middleware import mask_ip
from consentgate.middleware.cli import main
from consentgate.middleware.logfiles import Entry, format_jsonl
from consentgate.widgets import Declaration, build_catalogue, render_declaration
from consentgate.widgets.declaration import safe_href

Data = Callable[..., dict[str, Any]]
Format = Literal["html", "md"]

KEY = "k" * 40
LANGUAGES: tuple[Language, ...] = ("de", "en")
FORMATS: tuple[Format, ...] = ("html", "md")
PAYLOAD = '<script>alert(1)</script> "Q" & A'
MATOMO_URL = "https://stats.example.de/"

#: What the texts call the consent legal basis, per language.
CONSENT_BASIS = {"de": "Art. 6 Abs. 1 lit. a DSGVO, § 25 Abs. 1 TDDDG", "en": "Art. 6(1)(a) GDPR"}
UNITED_STATES = {"de": "Vereinigte Staaten", "en": "United States"}
TWO_CLICK = {"de": "Zwei-Klick-Lösung", "en": "two-click solution"}
NO_TRANSFER = {
    "de": "Eine Übermittlung Ihrer Daten in Länder außerhalb der EU und des EWR ist nicht",
    "en": "No transfer of your data to countries outside the EU and the EEA is intended.",
}
DNT = {"de": "„Do Not Track“, bleibt", "en": "“Do Not Track” signal,"}
UNITS = {
    "de": {"day": ("Tag", "Tage"), "hour": ("Stunde", "Stunden"), "minute": ("Minute", "Minuten")},
    "en": {"day": ("day", "days"), "hour": ("hour", "hours"), "minute": ("minute", "minutes")},
}


def make_settings(**data: Any) -> Settings:
    """Return settings from a dict shaped like the TOML file (presets merged in)."""
    return Settings.from_mapping({"secret_keys": [KEY], **data})


def preset_settings(preset: str, **data: Any) -> Settings:
    """Return settings enabling only ``preset`` (Matomo with its url)."""
    table = {"url": MATOMO_URL} if preset == "matomo" else {}
    return make_settings(services={preset: table}, **data)


def section(declaration: Declaration, anchor: str) -> str:
    """Return the text of the section whose heading has ``anchor``, up to the next heading."""
    text = declaration.text
    if declaration.format == "html":
        start = text.index(f'<h3 id="{anchor}">')
        end = min(i for i in (text.find("<h3", start + 1), text.find("</section>")) if i != -1)
    else:
        start = text.index(f'<a id="{anchor}"></a>')
        end = text.find('<a id="', start + 1)
        end = len(text) if end == -1 else end
    return text[start:end]


def shown(value: str, fmt: Format) -> str:
    """Return ``value`` as it appears in the output (no Markdown-special characters in it)."""
    assert not re.search(r"[\\`*_\[\]|~#!<>&]", value), f"pick a fact without markup: {value!r}"
    return html.escape(value) if fmt == "html" else value


def lifetime(days: float | None, language: Language) -> str:
    """Return a cookie lifetime as the declaration should print it."""
    if days is None:
        return {"de": "Sitzung", "en": "session"}[language]
    if days >= 1:
        amount, unit = days, "day"
    elif days * 24 >= 1:
        amount, unit = round(days * 24), "hour"
    else:
        amount, unit = round(days * 1440), "minute"
    assert float(amount).is_integer(), f"the presets' lifetimes are whole units ({days})"
    number = f"{int(amount):,}".replace(",", "." if language == "de" else ",")
    singular, plural = UNITS[language][unit]
    return f"{number} {singular if amount == 1 else plural}"


def cookie_row(text: str, name: str, fmt: Format) -> str:
    """Return the table row of cookie ``name``."""
    if fmt == "html":
        pattern = rf"<tr><td><code>{re.escape(html.escape(name))}</code></td>.*?</tr>"
        rows = [match[0] for match in re.finditer(pattern, text)]
    else:
        rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
    [row] = rows
    return row


# --- The facts of every preset ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("preset", PRESET_IDS)
def test_every_preset_declares_its_facts(preset: str, language: Language, fmt: Format) -> None:
    settings = preset_settings(preset)
    service = settings.services[preset]
    declaration = render_declaration(settings, language, fmt)
    part = section(declaration, preset)
    heading = {"de": "Einsatz von ", "en": "Use of "}[language] + service.name
    assert shown(heading, fmt) in part
    provider = service.provider
    assert shown(f"{provider.name}, {provider.address}", fmt) in part
    assert CONSENT_BASIS[language] in part
    assert shown(service.description.get(language), fmt) in part
    for purpose in service.purposes:
        assert shown(purpose.get(language), fmt) in part
    link = '<a href="{0}">' if fmt == "html" else "]({0})"
    assert link.format(service.privacy_policy_url) in part
    if service.opt_out_url is not None:
        assert link.format(service.opt_out_url) in part
    assert service.cookies or preset == "google_tag_manager"
    for cookie in service.cookies:
        row = cookie_row(part, cookie.name, fmt)
        assert lifetime(cookie.lifetime_days, language) in row
        party = {"de": "Drittanbieter", "en": "third party"}[language]
        assert (party in row) == (cookie.party == "third")
    if service.data_transfer_countries:
        assert service.data_transfer_countries == ["US"]
        assert UNITED_STATES[language] in part
        assert "Art. 49" in part
    else:
        assert NO_TRANSFER[language] in part
    assert (DNT[language] in part) == service.honors_dnt
    embed = service.placeholder is not None
    assert (TWO_CLICK[language] in part) == embed
    if embed:
        assert service.load_label is not None
        assert service.load_label.get(language) in part
    assert ("youtube-nocookie.com" in part) == (preset == "youtube")
    gtm = {"de": "braucht selbst Ihre Einwilligung", "en": "needs your consent itself"}
    assert (gtm[language] in part) == (preset == "google_tag_manager")
    assert ("stats.example.de" in part) == (preset == "matomo")


@pytest.mark.parametrize("language", LANGUAGES)
def test_sections_follow_the_settings_order_with_the_consent_cookie_first(
    settings: Settings, language: Language
) -> None:
    text = render_declaration(settings, language).text
    anchors = re.findall(r'<h[23] id="([^"]+)">', text)
    assert anchors == [
        "consentgate-declaration",
        "consentgate-consent",
        *settings.services,
        "consentgate-access-log",
    ]


def test_intro_names_categories_opt_in_withdrawal_and_signals(settings: Settings) -> None:
    text = render_declaration(settings, "de").text
    intro = text[: text.index('<h3 id="consentgate-consent">')]
    for category in ("Notwendig", "Statistik", "Marketing", "Externe Medien"):
        assert f"<strong>{category}" in intro
    assert "Präferenzen" not in intro  # no service of that category is configured
    assert "Art. 6 Abs. 1 lit. a DSGVO, § 25 Abs. 1 TDDDG" in intro
    assert "mit Wirkung für die Zukunft" in intro
    assert '<button type="button" data-consentgate-open>Cookie-Einstellungen</button>' in intro
    assert "„Do Not Track“ (DNT), laden wir etracker Analytics und Matomo nicht" in intro
    assert "„Global Privacy Control“ (GPC)" in intro and "Kategorie Marketing" in intro


def test_signals_are_only_mentioned_when_they_count(settings_data: Data) -> None:
    quiet = Settings.from_mapping(settings_data(signals={"dnt": False, "gpc": []}))
    text = render_declaration(quiet, "en").text
    assert "Do Not Track" not in text and "Global Privacy Control" not in text


def test_consent_cookie_and_record_follow_the_settings(settings_data: Data) -> None:
    settings = Settings.from_mapping(
        settings_data(
            cookie={"name": "cg_choice", "lifetime_days": 180},
            ledger={"retention_days": 730},
            ip={"ipv4_prefix": 16, "ipv6_prefix": 32},
            prefix="/consent",
        )
    )
    de = section(render_declaration(settings, "de"), "consentgate-consent")
    assert "im Cookie <code>cg_choice</code>" in de and "gilt 180 Tage" in de
    assert "<tr><td><code>cg_choice</code></td>" in de and "<td>180 Tage</td>" in de
    assert "§ 25 Abs. 2 Nr. 2 TDDDG" in de
    assert "Art. 6 Abs. 1 lit. c in Verbindung mit Art. 7 Abs. 1 DSGVO" in de
    assert "Nach 730 Tagen löschen wir sie automatisch" in de
    assert "die ersten 16 von 32 Bit" in de and "die ersten 32 von 128 Bit" in de
    for fact in ("Datum und Uhrzeit", "Einwilligungs-ID", "Revision", "Kennung", "ohne Suchpar"):
        assert fact in de
    assert "Familie von Browser und Betriebssystem" in de
    assert '<a href="/consent/history">' in de
    en = section(render_declaration(settings, "en", "md"), "consentgate-consent")
    assert "cookie `cg_choice`" in en and "after 730 days" in en


def test_a_necessary_service_rests_on_legitimate_interest(
    settings_data: Data, necessary_service: dict[str, Any]
) -> None:
    data = settings_data()
    data["services"] = {"session": necessary_service | {"data_transfer_countries": ["US", "CH"]}}
    settings = Settings.from_mapping(data)
    part = section(render_declaration(settings, "de"), "session")
    assert "Art. 6 Abs. 1 lit. f DSGVO (berechtigtes Interesse), § 25 Abs. 2 Nr. 2 TDDDG" in part
    assert "ohne Einwilligung" in part
    assert "Vereinigte Staaten und Schweiz" in part
    assert "Art. 49" not in part  # no consent to lean on for the transfer
    assert "Do Not Track" not in part and "Global Privacy Control" not in part


def test_no_eu_claim_for_a_provider_outside_the_eea(
    settings_data: Data, necessary_service: dict[str, Any]
) -> None:
    data = settings_data()
    swiss = necessary_service | {
        "provider": {"name": "Muster AG", "address": "Bahnhofstrasse 1, Zürich", "country": "CH"}
    }
    data["services"] = {"session": swiss}
    for language in LANGUAGES:
        part = section(render_declaration(Settings.from_mapping(data), language), "session")
        assert {"de": "Schweiz", "en": "Switzerland"}[language] in part
        assert "EWR" not in part and "EEA" not in part


def test_matomo_cloud_is_named_as_such(settings_data: Data) -> None:
    data = settings_data()
    data["services"] = {"matomo": {"url": "https://musterstadt.matomo.cloud/"}}
    part = section(render_declaration(Settings.from_mapping(data), "de"), "matomo")
    assert "Matomo Cloud" in part and "musterstadt.matomo.cloud" in part


def test_gtm_mentions_the_csp_only_when_it_is_enforced(settings_data: Data) -> None:
    sentence = "Content-Security-Policy"
    for mode, present in (("off", False), ("report-only", False), ("enforce", True)):
        settings = Settings.from_mapping(settings_data(csp={"mode": mode}))
        part = section(render_declaration(settings, "de"), "google_tag_manager")
        assert (sentence in part) is present, mode


def test_without_placeholders_no_two_click_is_promised(settings_data: Data) -> None:
    settings = Settings.from_mapping(settings_data(blocking={"placeholders": False}))
    text = render_declaration(settings, "de").text
    assert "Zwei-Klick" not in text and "Video abspielen" not in text


def test_english_falls_back_to_german_service_texts(settings_data: Data) -> None:
    data = settings_data(languages=["de"])
    data["services"] = {
        "newsletter": {
            "name": "Newsletter",
            "category": "preferences",
            "description": {"de": "Merkt sich Ihre Anmeldung."},
            "purposes": [{"de": "Anmeldung merken"}],
            "privacy_policy_url": "/datenschutz",
            "provider": {"name": "Stadtwerke", "address": "Hauptstraße 1", "country": "DE"},
            "cookies": [{"name": "nl", "lifetime_days": 30, "purpose": {"de": "Anmeldung"}}],
        }
    }
    text = render_declaration(Settings.from_mapping(data), "en").text
    assert "Use of Newsletter" in text
    assert "Merkt sich Ihre Anmeldung." in text and "Anmeldung merken" in text
    assert "<td>Anmeldung</td><td>30 days</td>" in text
    assert "Preferences (Newsletter)" in text


# --- Escaping ---------------------------------------------------------------------------------


def hostile_settings(settings_data: Data) -> Settings:
    data = settings_data()
    data["services"] = {
        "custom": {
            "name": PAYLOAD,
            "category": "marketing",
            "description": {"de": PAYLOAD, "en": "# " + PAYLOAD},
            "purposes": [{"de": "* " + PAYLOAD, "en": "[x](javascript:alert(1))"}],
            "privacy_policy_url": "https://example.com/a?b=1&c=2",
            "opt_out_url": "https://example.com/<x>",
            "provider": {"name": PAYLOAD, "address": "| " + PAYLOAD, "country": "DE"},
            "cookies": [{"name": "<b>", "purpose": {"de": PAYLOAD, "en": PAYLOAD}}],
        }
    }
    data["declaration"] = {
        "controller": PAYLOAD,
        "texts": {"de": {"title": PAYLOAD + " {cookie_name}"}, "en": {"title": "- " + PAYLOAD}},
    }
    return Settings.from_mapping(data)


@pytest.mark.parametrize("language", LANGUAGES)
def test_html_escapes_every_value_from_the_settings(
    settings_data: Data, language: Language
) -> None:
    text = render_declaration(hostile_settings(settings_data), language, "html").text
    assert "<script>" not in text and "<b>" not in text and "<x>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &quot;Q&quot; &amp; A" in text
    assert 'href="https://example.com/a?b=1&amp;c=2"' in text
    assert "https://example.com/&lt;x&gt;" in text  # not a link: printed as text
    assert "<code>&lt;b&gt;</code>" in text
    assert "javascript:" not in text.replace("[x](javascript:alert(1))", "")
    check_fragment(text)


@pytest.mark.parametrize("language", LANGUAGES)
def test_markdown_shows_hostile_text_as_text(settings_data: Data, language: Language) -> None:
    text = render_declaration(hostile_settings(settings_data), language, "md").text
    ours = r'<(?!button type="button" data-consentgate-open>|/button>|a id="[a-z_-]+">|/a>)'
    assert re.findall(ours, text) == [], "only our own button and anchors are raw HTML"
    assert '&lt;script&gt;alert(1)&lt;/script&gt; "Q" &amp; A' in text
    assert "[x](javascript" not in text  # brackets escaped: no link
    assert "https://example.com/&lt;x&gt;" in text and "](https://example.com/<" not in text
    for line in text.splitlines():
        # No untrusted text starts a heading, list item, quote or table row of its own.
        assert not line.startswith(("# ", "* ", "> ", "&gt;", "| &lt;script")), line
        if line.startswith("#"):
            assert re.match(r"#{2,3} ", line), line


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        pytest.param("https://example.com/x", True, id="https"),
        pytest.param("http://example.com", True, id="http"),
        pytest.param("/datenschutz#youtube", True, id="site-path"),
        pytest.param("javascript:alert(1)", False, id="javascript"),
        pytest.param("JavaScript:alert(1)", False, id="javascript-case"),
        pytest.param("java\nscript:alert(1)", False, id="javascript-newline"),
        pytest.param(" javascript:alert(1)", False, id="javascript-space"),
        pytest.param("data:text/html,x", False, id="data"),
        pytest.param("//evil.example/x", False, id="scheme-relative"),
        pytest.param('https://e.com/"onmouseover=x', False, id="quote"),
        pytest.param("https:/\\evil.example", False, id="backslash"),
    ],
)
def test_only_http_and_site_links_become_links(url: str, safe: bool) -> None:
    assert (safe_href(url) is not None) is safe


# --- Valid HTML -------------------------------------------------------------------------------

VOID = {"br", "hr", "img", "input", "meta", "link", "wbr", "col", "source", "area"}
PHRASING = {"code", "strong", "a", "button", "em", "span", "br"}


class StrictChecker(HTMLParser):
    """Asserts proper nesting: every non-void start tag closed in order, phrasing in ``<p>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: list[str] = []
        self.headings: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.stack and self.stack[-1] in {"p", "li", "dt", "dd", "td", "th", "caption"}:
            assert tag in PHRASING, f"<{tag}> inside <{self.stack[-1]}>"
        self.ids += [value or "" for name, value in attrs if name == "id"]
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise AssertionError(f"self-closing <{tag}/> in an HTML fragment")

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, f"</{tag}> closes nothing"
        assert self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1]}>"
        self.stack.pop()


def check_fragment(text: str) -> StrictChecker:
    """Parse ``text`` with html5lib in strict mode and with ``StrictChecker``."""
    html5lib.HTMLParser(strict=True).parseFragment(text)  # raises on any parse error
    checker = StrictChecker()
    checker.feed(text)
    checker.close()
    assert checker.stack == [], f"unclosed: {checker.stack}"
    assert len(checker.ids) == len(set(checker.ids)), "duplicate ids"
    return checker


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("preset", PRESET_IDS)
def test_html_is_a_valid_fragment(preset: str, language: Language) -> None:
    text = render_declaration(preset_settings(preset), language, "html").text
    checker = check_fragment(text)
    assert checker.headings[0] == 2 and set(checker.headings[1:]) == {3}
    assert text.startswith(
        f'<section class="consentgate-declaration" lang="{language}" data-consentgate-declaration'
        ' data-revision="1" data-fingerprint="'
    )
    assert text.rstrip().endswith("</section>")
    assert text.count("<table>") == text.count("<thead>") == text.count("<tbody>")


@pytest.mark.parametrize("language", LANGUAGES)
def test_html_of_all_presets_together_is_valid(settings: Settings, language: Language) -> None:
    check_fragment(render_declaration(settings, language).text)


# --- Fingerprint ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_fingerprint_is_shared_by_html_and_markdown(settings: Settings, language: Language) -> None:
    as_html = render_declaration(settings, language, "html")
    as_md = render_declaration(settings, language, "md")
    assert re.fullmatch(r"[0-9a-f]{64}", as_html.fingerprint)
    assert as_html.fingerprint == as_md.fingerprint
    assert as_html.revision == as_md.revision == settings.revision
    assert f'data-fingerprint="{as_html.fingerprint}"' in as_html.text
    short = as_html.fingerprint[:8]
    footer = {
        "de": f"Stand: Revision 1 · Kennung {short}…",
        "en": f"revision 1 · fingerprint {short}…",
    }
    assert footer[language] in as_html.text and footer[language] in as_md.text
    assert render_declaration(settings, language).fingerprint == as_html.fingerprint, "stable"


def test_fingerprint_changes_with_any_text_or_fact(settings_data: Data) -> None:
    def fingerprint(data: dict[str, Any], language: Language = "de") -> str:
        return render_declaration(Settings.from_mapping(data), language).fingerprint

    base = fingerprint(settings_data())
    assert fingerprint(settings_data(), "en") != base
    assert fingerprint(settings_data(revision=2)) != base
    assert fingerprint(settings_data(declaration={"texts": {"de": {"intro": "Neu."}}})) != base
    assert fingerprint(settings_data(declaration={"texts": {"en": {"intro": "New."}}})) == base
    assert fingerprint(
        settings_data(declaration={"texts": {"de": {"footer": "R {revision}"}}})
    ) != (base)
    assert fingerprint(settings_data(access_log={"directory": "logs"})) != base
    assert fingerprint(settings_data(cookie={"lifetime_days": 180})) != base
    relabelled = settings_data()
    relabelled["services"]["youtube"]["cookies"] = [{"name": "YSC", "party": "third"}]
    assert fingerprint(relabelled) != base


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_banner_catalogue_pins_the_declaration(settings_data: Data, language: Language) -> None:
    settings = Settings.from_mapping(settings_data())
    catalogue = build_catalogue(settings, language)
    assert catalogue.data["declaration"] == render_declaration(settings, language).fingerprint
    assert json.loads(catalogue.content)["declaration"] == catalogue.data["declaration"]
    reworded = Settings.from_mapping(
        settings_data(declaration={"texts": {language: {"intro": "Anders gesagt."}}})
    )
    assert build_catalogue(reworded, language).fingerprint != catalogue.fingerprint


# --- Operator overrides -----------------------------------------------------------------------


def test_an_override_replaces_the_shipped_text(settings_data: Data) -> None:
    settings = Settings.from_mapping(
        settings_data(
            declaration={
                "texts": {
                    "de": {
                        "service_heading": "Dienst: {service} ({provider})",
                        "settings_button": "Auswahl ändern",
                        "consent_record_kept": "Wir behalten die Einträge {retention_days} Tage.",
                    }
                }
            }
        )
    )
    de = render_declaration(settings, "de").text
    assert '<h3 id="youtube">Dienst: YouTube (Google Ireland Limited)</h3>' in de
    assert "Einsatz von" not in de
    assert '<button type="button" data-consentgate-open>Auswahl ändern</button>' in de
    assert "Wir behalten die Einträge 1.095 Tage." in de
    en = render_declaration(settings, "en").text
    assert "Use of YouTube" in en and "Cookie settings</button>" in en


def test_overrides_from_a_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "consentgate.toml"
    path.write_text(
        f"""
secret_keys = ["{KEY}"]
[services.youtube]
description = {{ de = "Unsere Erklärvideos.", en = "Our explainer videos." }}
[declaration]
controller = \"\"\"Stadtwerke Musterstadt GmbH
Am Marktplatz 5, 12345 Musterstadt\"\"\"
[declaration.texts.de]
title = "Cookies auf {{cookie_name}} {{{{geschweift}}}}"
""",
        encoding="utf-8",
    )
    settings = Settings.from_file(path, environ={})
    text = render_declaration(settings, "de").text
    assert "Stadtwerke Musterstadt GmbH, Am Marktplatz 5, 12345 Musterstadt" in text
    assert ">Cookies auf consentgate {geschweift}</h2>" in text
    assert "Unsere Erklärvideos." in text


@pytest.mark.parametrize(
    ("texts", "named"),
    [
        pytest.param({"de": {"titel": "x"}}, ["'titel'", "title", "service_heading"], id="key"),
        pytest.param(
            {"en": {"title": "Cookies at {site}"}},
            ["{site}", "'title'", "{cookie_name}"],
            id="name",
        ),
        pytest.param(
            {"de": {"title": "{service}"}}, ["{service}", "'title'"], id="service-outside-service"
        ),
        pytest.param({"de": {"intro": "{cookie_name!r}"}}, ["{cookie_name!r}"], id="conversion"),
        pytest.param({"de": {"intro": "{ offen"}}, ["'intro'", "{{"], id="brace"),
        pytest.param(
            {"de": {"settings_button": "{settings_button}"}}, ["{settings_button}"], id="self"
        ),
    ],
)
def test_unknown_keys_and_placeholders_are_settings_errors(
    settings_data: Data, texts: dict[str, dict[str, str]], named: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping(settings_data(declaration={"texts": texts}))
    [problem] = caught.value.problems
    assert problem.key == "declaration.texts"
    for part in named:
        assert part in problem.message


def test_every_shipped_text_exists_in_both_languages_and_renders(settings_data: Data) -> None:
    from consentgate.config.models import declaration_placeholders, default_declaration_texts

    shipped = default_declaration_texts()
    assert set(shipped["de"]) == set(shipped["en"])
    # Every placeholder a text may use is filled in wherever the text is used.
    everything = {
        key: "".join(f"{{{p}}}" for p in sorted(declaration_placeholders(key)))
        for key in shipped["de"]
    }
    necessary = settings_data()
    necessary["services"]["matomo"]["url"] = "https://musterstadt.matomo.cloud/"
    necessary["services"]["session"] = {
        "name": "Sitzung",
        "category": "necessary",
        "description": {"de": "Hält die Anmeldung.", "en": "Keeps you signed in."},
        "provider": {"name": "Stadtwerke", "address": "Hauptstraße 1", "country": "DE"},
        "privacy_policy_url": "/datenschutz",
        "data_transfer_countries": ["US"],
    }
    necessary["access_log"] = {"directory": "logs", "format": "jsonl", "keep_query": True}
    for variant in (
        settings_data(access_log={"directory": "logs"}, csp={"mode": "enforce"}),
        settings_data(ip={"ipv4_prefix": 32, "ipv6_prefix": 128}, access_log={"directory": "l"}),
        settings_data(declaration={"controller": "X"}),
        necessary,
    ):
        variant["declaration"] = {**variant.get("declaration", {}), "texts": {"de": everything}}
        render_declaration(Settings.from_mapping(variant), "de")


# --- The access-log paragraph -----------------------------------------------------------------


def log_part(**access_log: Any) -> str:
    settings = make_settings(
        services={"youtube": {}}, access_log=access_log, ip={"ipv4_prefix": 24}
    )
    return section(render_declaration(settings, "de"), "consentgate-access-log")


def test_without_a_log_directory_only_the_masking_is_declared() -> None:
    part = log_part()
    assert "Ihre IP-Adresse</h3>" in part
    assert "Bevor unsere Anwendung Ihre IP-Adresse erhält" in part
    assert "die ersten 24 von 32 Bit" in part and "aus 203.0.113.77 wird 203.0.113.0" in part
    assert "Protokoll" not in part and "gelöscht" not in part


def test_with_a_log_directory_exactly_the_written_fields_are_declared() -> None:
    part = log_part(directory="logs")
    assert "Server-Protokolle</h3>" in part
    fields = re.findall(r"<li>(.*?)</li>", part)
    assert len(fields) == 6
    address, when, request, status, referrer, agent = fields
    assert "die ersten 24 von 32 Bit" in address and "48 von 128 Bit" in address
    assert "UTC" in when
    assert "Anfrageart" in request and "ohne Suchparameter" in request and "HTTP-Version" in request
    assert "Statuscode" in status and "Bytes" in status
    assert "ohne die einzelne Seite" in referrer
    assert "Hauptversion" in agent and "nicht die vollständige Browserkennung" in agent
    assert "NCSA Combined" in part and "<code>access-YYYY-MM-DD.log</code>" in part
    assert "mehr als 90 Tage zurückliegt" in part
    assert "hängt nicht davon ab, ob die Website weiter aufgerufen wird" in part
    assert "Art. 6 Abs. 1 lit. f DSGVO" in part


def test_the_declared_fields_are_those_the_log_writes() -> None:
    """A field added to the access log must be added to the declaration too."""
    entry = Entry(0.0, "203.0.113.0", "GET", b"/", b"", "1.1", 200, 5, b"https://a.example/", None)
    record = json.loads(format_jsonl(entry, "", keep_query=False))
    # ip | time | method, path, protocol | status, bytes | referrer | browser, version, os
    assert set(record) == {
        "ip",
        "time",
        "method",
        "path",
        "protocol",
        "status",
        "bytes",
        "referrer",
        "browser",
        "browser_version",
        "os",
    }


@pytest.mark.parametrize(
    ("settings", "present", "absent"),
    [
        pytest.param(
            {"format": "jsonl"}, ["JSON Lines", "access-YYYY-MM-DD.jsonl"], ["NCSA"], id="jsonl"
        ),
        pytest.param({"format": "combined"}, ["NCSA Combined"], ["JSON Lines"], id="combined"),
        pytest.param(
            {"keep_query": True}, ["samt Suchparametern"], ["ohne Suchparameter"], id="query"
        ),
        pytest.param({"keep_query": False}, ["ohne Suchparameter"], ["samt Such"], id="no-query"),
        pytest.param({"retention_days": 30}, ["mehr als 30 Tage"], ["90 Tage"], id="30-days"),
        pytest.param({"retention_days": 90}, ["mehr als 90 Tage"], ["30 Tage"], id="90-days"),
    ],
)
def test_the_log_paragraph_follows_the_settings(
    settings: dict[str, Any], present: list[str], absent: list[str]
) -> None:
    part = log_part(directory="logs", **settings)
    for text in present:
        assert text in part
    for text in absent:
        assert text not in part


@pytest.mark.parametrize("prefix", [16, 24])
@pytest.mark.parametrize("directory", [None, "logs"])
def test_the_masking_example_is_what_mask_ip_does(prefix: int, directory: str | None) -> None:
    settings = make_settings(
        services={}, ip={"ipv4_prefix": prefix}, access_log={"directory": directory}
    )
    part = section(render_declaration(settings, "de"), "consentgate-access-log")
    masked = mask_ip("203.0.113.77", ipv4_prefix=prefix)
    assert f"die ersten {prefix} von 32 Bit" in part
    assert f"aus 203.0.113.77 wird {masked}" in part


def test_whole_addresses_are_not_called_shortened() -> None:
    full = {"ipv4_prefix": 32, "ipv6_prefix": 128}
    text = render_declaration(make_settings(ip=full), "de").text
    assert "consentgate-access-log" not in text and "203.0.113.77" not in text
    logged = render_declaration(make_settings(ip=full, access_log={"directory": "l"}), "de")
    part = section(logged, "consentgate-access-log")
    assert "<li>Ihre IP-Adresse</li>" in part and "in dieser Form" not in part


# --- The command line -------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "consentgate.toml"
    path.write_text(
        'languages = ["de", "en"]\n[services.youtube]\n[services.matomo]\n'
        f'url = "{MATOMO_URL}"\n[access_log]\ndirectory = "logs"\n',
        encoding="utf-8",
    )
    return path


def test_cli_prints_english_markdown(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--config", str(config_file), "declaration", "--lang", "en", "--format", "md"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith('<a id="consentgate-declaration"></a>\n\n## Cookies, consent and server')
    assert "### Use of YouTube" in out and "### Use of Matomo" in out and "### Server logs" in out
    assert "| `YSC` |" in out
    settings = Settings.from_file(config_file, environ={"CONSENTGATE_SECRET_KEYS": KEY})
    assert out == render_declaration(settings, "en", "md").text


def test_cli_writes_html_in_the_default_language_to_a_file(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "erklaerung.html"
    assert main(["--config", str(config_file), "declaration", "-o", str(target)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"wrote {target} (de, html)" in captured.err
    text = target.read_text(encoding="utf-8")
    assert text.startswith('<section class="consentgate-declaration" lang="de"')
    assert "Einsatz von YouTube" in text
    check_fragment(text)


def test_cli_reports_a_bad_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "consentgate.toml"
    path.write_text('[declaration.texts.de]\ntitel = "x"\n', encoding="utf-8")
    assert main(["--config", str(path), "declaration"]) == 2
    assert "unknown text key 'titel'" in capsys.readouterr().err


def test_service_model_default_basis_is_the_consent_basis() -> None:
    """The renderer recognises the default legal basis to translate it."""
    assert Service.model_fields["legal_basis"].default == CONSENT_BASIS["de"]


def test_unknown_format_or_language_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="format 'pdf'"):
        render_declaration(settings, "de", "pdf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="language 'fr'"):
        render_declaration(settings, "fr")  # type: ignore[arg-type]
