"""The DPO dashboard's pages, rendered on the server: numbers, tables and SVG charts.

Every number is in the HTML itself (tables next to each chart), so the page works without
JavaScript and with a screen reader; the charts are inline SVG pictures with a title and a
description. Everything taken from settings, the ledger or the audit is escaped.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape
from typing import Any
from urllib.parse import urlencode

from consentgate.config import CATEGORIES, CategoryText, Language, Settings
from consentgate.consent.export import Period
from consentgate.consent.store import AuditEntry
from consentgate.middleware.audit import describe
from consentgate.middleware.charts import Series, bar_chart, line_chart, share_bar

#: The periods the dashboard offers: query value → (days back or None for all, grouping).
RANGES: dict[str, tuple[int | None, Period]] = {
    "30": (30, "day"),
    "90": (90, "day"),
    "365": (365, "week"),
    "all": (None, "month"),
}
DEFAULT_RANGE = "30"
ACTIONS = ("accept-all", "custom", "reject-all", "withdraw")

STYLE = """
:root{color-scheme:light;--ink:#1b1f24;--muted:#555d66;--line:#d0d5db;--accent:#0b5cad;
--bad:#a3140f;--ok:#116b2f;--warn:#8a5300;font:16px/1.5 system-ui,sans-serif;color:var(--ink)}
body{margin:0;background:#f6f7f9}
a{color:var(--accent)}
a:focus-visible,button:focus-visible,select:focus-visible,input:focus-visible,
summary:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.5rem}
.skip:focus{left:.5rem}
header{background:#fff;border-bottom:1px solid var(--line);padding:.75rem 1.5rem;display:flex;
flex-wrap:wrap;gap:1rem;align-items:center;justify-content:space-between}
header h1{font-size:1.35rem;margin:0}
header nav{display:flex;gap:1rem;align-items:center}
main{max-width:72rem;margin:0 auto;padding:1rem 1.5rem 3rem}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:1rem 1.25rem;
margin:1rem 0}
h2{font-size:1.15rem;margin:.2rem 0 .75rem}
dl.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(12rem,1fr));gap:.75rem;
margin:0}
dl.figures div{border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem}
dl.figures dt{color:var(--muted);font-size:.85rem}
dl.figures dd{margin:0;font-size:1.35rem;font-weight:600}
dl.figures dd small{display:block;font-size:.8rem;font-weight:400;color:var(--muted)}
.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}
caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{border-bottom:1px solid var(--line);padding:.3rem .5rem;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
details{margin:.5rem 0}summary{cursor:pointer;color:var(--accent)}
form.inline{display:flex;flex-wrap:wrap;gap:.75rem;align-items:end}
label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted);gap:.2rem}
button,select,input{font:inherit;padding:.35rem .7rem;border:1px solid #8a939c;border-radius:6px;
background:#fff;color:var(--ink)}
button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
button.secondary{background:#fff;color:var(--accent)}
.login{max-width:26rem;margin:4rem auto}
.login form{display:flex;flex-direction:column;gap:.75rem}
.error{color:var(--bad);font-weight:600}
p.note{color:var(--muted);font-size:.9rem}
ul.findings{padding-left:1.2rem}
svg{max-width:100%;height:auto}
"""
#: The Content-Security-Policy of the dashboard: nothing but its own inline style and forms.
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

TEXTS: dict[Language, dict[str, str]] = {
    "de": {
        "title": "Einwilligungen – Übersicht für den Datenschutz",
        "skip": "Zum Inhalt springen",
        "login_title": "Anmeldung Datenschutz-Übersicht",
        "login_intro": "Bitte geben Sie das DPO-Token aus den Einstellungen ([dpo] token) ein. "
        "Die Anmeldung gilt {minutes} Minuten.",
        "token": "DPO-Token",
        "login": "Anmelden",
        "logout": "Abmelden",
        "wrong_token": "Das Token ist falsch.",
        "expired": "Die Anmeldung ist abgelaufen. Bitte melden Sie sich erneut an.",
        "range": "Zeitraum",
        "range_30": "letzte 30 Tage",
        "range_90": "letzte 90 Tage",
        "range_365": "letzte 12 Monate (wöchentlich)",
        "range_all": "gesamter Bestand (monatlich)",
        "show": "Anzeigen",
        "figures": "Kennzahlen",
        "decisions": "Entscheidungen",
        "visitors": "Einwilligungs-IDs",
        "reject_share": "Anteil „Alle ablehnen“",
        "accept_share": "Anteil „Alle akzeptieren“",
        "spool": "Warteschlange (Spool)",
        "spool_empty": "leer",
        "spool_waiting": "{n} warten seit {oldest}",
        "store": "Speicher",
        "store_ok": "erreichbar",
        "store_down": "nicht erreichbar",
        "chain": "Hash-Kette",
        "chain_ok": "intakt",
        "chain_broken": "beschädigt",
        "chain_unknown": "noch nicht geprüft",
        "chain_checked": "{n} Datensätze geprüft am {at}",
        "chain_first": "Erstes Problem: {problem}",
        "verify": "Kette jetzt prüfen",
        "computed_at": "Zahlen vom {at}; sie werden höchstens eine Minute lang wiederverwendet.",
        "logs": "Zugriffsprotokolle",
        "logs_off": "nicht aktiviert",
        "logs_ok": "ältestes vom {oldest}",
        "logs_none": "keine Dateien",
        "logs_overdue": "{n} Datei(en) älter als {days} Tage",
        "logs_keep": "Aufbewahrung {days} Tage",
        "per_day": "Entscheidungen pro Zeitraum",
        "per_day_desc": "Gestapelte Balken: Entscheidungen je {by}, nach Art der Entscheidung.",
        "actions_share": "Verteilung der Entscheidungen",
        "actions_share_desc": "Anteil jeder Art von Entscheidung im gewählten Zeitraum.",
        "service_rates": "Opt-in-Rate je Dienst",
        "service_rates_desc": "Anteil der Entscheidungen, die den Dienst erlauben, je {by}.",
        "category_rates": "Opt-in-Rate je Kategorie",
        "category_rates_desc": "Anteil der Entscheidungen, die die Kategorie erlauben, je {by}.",
        "as_table": "Als Tabelle anzeigen",
        "period": "Zeitraum",
        "service": "Dienst",
        "category": "Kategorie",
        "granted": "erlaubt",
        "offered": "angeboten",
        "rate": "Opt-in-Rate",
        "totals": "Opt-in je Dienst im Zeitraum",
        "audit": "Tracker-Audit",
        "audit_intro": "Hosts in ausgelieferten Seiten und Cookies der Anwendung, die kein "
        "konfigurierter Dienst abdeckt. Tragen Sie den Dienst in die Einstellungen ein oder "
        "entfernen Sie das Element.",
        "audit_none": "Keine unbekannten Dienste oder Cookies gesehen.",
        "audit_clear": "Liste leeren",
        "count": "Anzahl",
        "last_seen": "zuletzt",
        "export": "Export der Einwilligungsnachweise",
        "export_intro": "Alle Datensätze (oder ein Zeitraum) als CSV für Excel oder als JSON "
        "Lines. Der Download enthält gekürzte IP-Adressen; bewahren Sie ihn sicher auf.",
        "format": "Format",
        "since": "von (einschließlich)",
        "until": "bis (ausschließlich)",
        "download": "Herunterladen",
        "declaration": "Cookie-Erklärung",
        "declaration_link": "Aktuelle Cookie-Erklärung ansehen (Revision {revision})",
        "no_data": "Keine Entscheidungen im Zeitraum",
        "day": "Tag",
        "week": "Woche",
        "month": "Monat",
        "accept-all": "Alle akzeptiert",
        "custom": "Auswahl",
        "reject-all": "Alle abgelehnt",
        "withdraw": "Widerruf",
        "language": "English",
        "unknown": "unbekannt",
    },
    "en": {
        "title": "Consent – data protection dashboard",
        "skip": "Skip to content",
        "login_title": "Sign in to the data protection dashboard",
        "login_intro": "Enter the DPO token from the settings ([dpo] token). "
        "The session lasts {minutes} minutes.",
        "token": "DPO token",
        "login": "Sign in",
        "logout": "Sign out",
        "wrong_token": "The token is wrong.",
        "expired": "The session has expired. Please sign in again.",
        "range": "Period",
        "range_30": "last 30 days",
        "range_90": "last 90 days",
        "range_365": "last 12 months (weekly)",
        "range_all": "everything stored (monthly)",
        "show": "Show",
        "figures": "Key figures",
        "decisions": "Decisions",
        "visitors": "Consent ids",
        "reject_share": "Share of “reject all”",
        "accept_share": "Share of “accept all”",
        "spool": "Spool",
        "spool_empty": "empty",
        "spool_waiting": "{n} waiting since {oldest}",
        "store": "Store",
        "store_ok": "reachable",
        "store_down": "unreachable",
        "chain": "Hash chain",
        "chain_ok": "intact",
        "chain_broken": "broken",
        "chain_unknown": "not checked yet",
        "chain_checked": "{n} records checked at {at}",
        "chain_first": "First problem: {problem}",
        "verify": "Check the chain now",
        "computed_at": "Figures as of {at}; they are reused for at most a minute.",
        "logs": "Access logs",
        "logs_off": "not enabled",
        "logs_ok": "oldest from {oldest}",
        "logs_none": "no files",
        "logs_overdue": "{n} file(s) older than {days} days",
        "logs_keep": "kept {days} days",
        "per_day": "Decisions per period",
        "per_day_desc": "Stacked bars: decisions per {by}, by kind of decision.",
        "actions_share": "Kinds of decision",
        "actions_share_desc": "Share of each kind of decision in the chosen period.",
        "service_rates": "Opt-in rate per service",
        "service_rates_desc": "Share of decisions allowing the service, per {by}.",
        "category_rates": "Opt-in rate per category",
        "category_rates_desc": "Share of decisions allowing the category, per {by}.",
        "as_table": "Show as a table",
        "period": "Period",
        "service": "Service",
        "category": "Category",
        "granted": "granted",
        "offered": "offered",
        "rate": "Opt-in rate",
        "totals": "Opt-in per service in the period",
        "audit": "Tracker audit",
        "audit_intro": "Hosts in the pages served and cookies set by the app that no "
        "configured service covers. Add the service to the settings or remove the element.",
        "audit_none": "No unknown services or cookies seen.",
        "audit_clear": "Clear the list",
        "count": "Count",
        "last_seen": "last seen",
        "export": "Export of the consent records",
        "export_intro": "Every record (or a period) as CSV for Excel or as JSON Lines. "
        "The download holds masked IP addresses; keep it safe.",
        "format": "Format",
        "since": "from (inclusive)",
        "until": "until (exclusive)",
        "download": "Download",
        "declaration": "Cookie declaration",
        "declaration_link": "View the current cookie declaration (revision {revision})",
        "no_data": "No decisions in the period",
        "day": "day",
        "week": "week",
        "month": "month",
        "accept-all": "Accepted all",
        "custom": "Custom",
        "reject-all": "Rejected all",
        "withdraw": "Withdrawn",
        "language": "Deutsch",
        "unknown": "unknown",
    },
}


@dataclass
class ChainStatus:
    """The last chain check this process ran."""

    ok: bool
    checked: int
    at: str
    first_problem: str | None = None


@dataclass
class LogStatus:
    """The access-log files on disk: how old the oldest is, how many are overdue."""

    enabled: bool
    retention_days: int
    files: int = 0
    oldest: str | None = None
    overdue: int = 0


@dataclass
class DashboardData:
    """Everything one dashboard page shows."""

    range: str
    stats: dict[str, Any]
    labels: list[str]
    store_ok: bool
    spool_depth: int
    spool_oldest: str | None
    chain: ChainStatus | None
    logs: LogStatus
    findings: list[AuditEntry] = field(default_factory=list)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _rate_of(stats: Mapping[str, Any], label: str, kind: str, key: str) -> float | None:
    """Return the opt-in rate of service or category ``key`` in period ``label``."""
    rate: float | None = (
        stats["periods"].get(label, {}).get(kind, {}).get(key, {}).get("opt_in_rate")
    )
    return rate


def _percent(rate: float | None, language: Language) -> str:
    if rate is None:
        return "–"
    text = f"{rate * 100:.1f} %"
    return text.replace(".", ",") if language == "de" else text


def _count(number: int, language: Language) -> str:
    return f"{number:,}".replace(",", "." if language == "de" else ",")


class DashboardPages:
    """Renders the dashboard and login pages for one settings object."""

    def __init__(self, settings: Settings, session_minutes: int) -> None:
        self.settings = settings
        self.base = settings.prefix + "/admin/"
        self.session_minutes = session_minutes

    def _page(self, language: Language, title: str, body: str, header: str = "") -> str:
        t = TEXTS[language]
        return (
            f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<meta name="robots" content="noindex,nofollow">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
            f'<a class="skip" href="#main">{_e(t["skip"])}</a>{header}'
            f'<main id="main" tabindex="-1">{body}</main></body></html>'
        )

    def _other_language(self, language: Language, query: Mapping[str, str]) -> str:
        other = "en" if language == "de" else "de"
        href = self.base + "?" + urlencode({**query, "lang": other})
        name = _e(TEXTS[language]["language"])
        return f'<a href="{_e(href)}" lang="{other}" hreflang="{other}">{name}</a>'

    def login(self, language: Language, *, error: str | None = None) -> str:
        """Return the login page; ``error`` is a key of ``TEXTS`` shown as an alert."""
        t = TEXTS[language]
        alert = f'<p class="error" role="alert">{_e(t[error])}</p>' if error else ""
        switch = self._other_language(language, {})
        body = (
            f'<section class="login" aria-labelledby="login-title">'
            f'<h1 id="login-title">{_e(t["login_title"])}</h1>{alert}'
            f"<p>{_e(t['login_intro'].format(minutes=self.session_minutes))}</p>"
            f'<form method="post" action="{_e(self.base)}login">'
            f'<input type="hidden" name="lang" value="{language}">'
            f'<label for="token">{_e(t["token"])}'
            '<input id="token" name="token" type="password" autocomplete="current-password" '
            'required autofocus spellcheck="false"></label>'
            f'<button type="submit">{_e(t["login"])}</button></form>'
            f"<p>{switch}</p></section>"
        )
        return self._page(language, t["login_title"], body)

    def dashboard(self, language: Language, data: DashboardData) -> str:
        """Return the dashboard page for ``data``."""
        t = TEXTS[language]
        query = {"range": data.range}
        header = (
            f'<header><h1>{_e(t["title"])}</h1><nav aria-label="{_e(t["figures"])}">'
            f"{self._other_language(language, query)}"
            f'<form method="post" action="{_e(self.base)}logout">'
            f'<input type="hidden" name="lang" value="{language}">'
            f'<button class="secondary" type="submit">{_e(t["logout"])}</button></form>'
            "</nav></header>"
        )
        body = "".join(
            (
                self._range_form(language, data),
                self._figures(language, data),
                self._decisions(language, data),
                self._rates(language, data),
                self._audit(language, data),
                self._export(language),
            )
        )
        return self._page(language, t["title"], body, header)

    def _range_form(self, language: Language, data: DashboardData) -> str:
        t = TEXTS[language]
        options = "".join(
            f'<option value="{key}"{" selected" if key == data.range else ""}>'
            f"{_e(t['range_' + key])}</option>"
            for key in RANGES
        )
        return (
            f'<form class="inline" method="get" action="{_e(self.base)}">'
            f'<input type="hidden" name="lang" value="{language}">'
            f'<label for="range">{_e(t["range"])}<select id="range" name="range">{options}'
            f'</select></label><button type="submit">{_e(t["show"])}</button></form>'
        )

    def _figures(self, language: Language, data: DashboardData) -> str:
        t = TEXTS[language]
        totals = data.stats["totals"]
        records = totals["records"]
        actions = totals["actions"]

        def share(action: str) -> str:
            return _percent(actions.get(action, 0) / records if records else None, language)

        spool = (
            f'<span class="ok">{_e(t["spool_empty"])}</span>'
            if data.spool_depth == 0
            else f'<span class="warn">{data.spool_depth}</span><small>'
            f"{_e(t['spool_waiting'].format(n=data.spool_depth, oldest=data.spool_oldest or '?'))}"
            "</small>"
        )
        store = (
            f'<span class="ok">{_e(t["store_ok"])}</span>'
            if data.store_ok
            else f'<span class="bad">{_e(t["store_down"])}</span>'
        )
        figures = [
            (t["decisions"], _count(records, language)),
            (t["visitors"], _count(totals["consent_ids"], language)),
            (t["reject_share"], _e(share("reject-all"))),
            (t["accept_share"], _e(share("accept-all"))),
            (t["store"], store),
            (t["spool"], spool),
            (t["chain"], self._chain(language, data.chain)),
            (t["logs"], self._logs(language, data.logs)),
        ]
        items = "".join(
            f"<div><dt>{_e(name)}</dt><dd>{value}</dd></div>" for name, value in figures
        )
        at = data.stats.get("computed_at")
        computed = f'<p class="note">{_e(t["computed_at"].format(at=at))}</p>' if at else ""
        return (
            f'<section aria-labelledby="figures"><h2 id="figures">{_e(t["figures"])}</h2>'
            f'<dl class="figures">{items}</dl>{computed}'
            f'<form id="chain" method="post" action="{_e(self.base)}verify">'
            f'<input type="hidden" name="lang" value="{language}">'
            f'<input type="hidden" name="range" value="{_e(data.range)}">'
            f'<p><button class="secondary" type="submit">{_e(t["verify"])}</button></p></form>'
            "</section>"
        )

    def _chain(self, language: Language, chain: ChainStatus | None) -> str:
        t = TEXTS[language]
        if chain is None:
            return f'<span class="warn">{_e(t["chain_unknown"])}</span>'
        label = (
            f'<span class="ok">{_e(t["chain_ok"])}</span>'
            if chain.ok
            else f'<span class="bad">{_e(t["chain_broken"])}</span>'
        )
        detail = t["chain_checked"].format(n=chain.checked, at=chain.at)
        if chain.first_problem:
            detail += " · " + t["chain_first"].format(problem=chain.first_problem)
        return f"{label}<small>{_e(detail)}</small>"

    def _logs(self, language: Language, logs: LogStatus) -> str:
        t = TEXTS[language]
        if not logs.enabled:
            return f"<span>{_e(t['logs_off'])}</span>"
        keep = t["logs_keep"].format(days=logs.retention_days)
        if logs.overdue:
            state = t["logs_overdue"].format(n=logs.overdue, days=logs.retention_days)
            return f'<span class="bad">{_e(state)}</span><small>{_e(keep)}</small>'
        state = t["logs_ok"].format(oldest=logs.oldest) if logs.oldest else t["logs_none"]
        return f'<span class="ok">{_e(state)}</span><small>{_e(keep)}</small>'

    def _decisions(self, language: Language, data: DashboardData) -> str:
        t = TEXTS[language]
        periods = data.stats["periods"]
        by = t[RANGES[data.range][1]]
        series = [
            Series(
                t[action],
                [
                    float(periods.get(label, {}).get("actions", {}).get(action, 0))
                    for label in data.labels
                ],
            )
            for action in ACTIONS
        ]
        chart = bar_chart(
            data.labels,
            series,
            title=t["per_day"],
            description=t["per_day_desc"].format(by=by),
            no_data=t["no_data"],
        )
        totals = data.stats["totals"]
        records = totals["records"]
        share = share_bar(
            [
                (t[action], totals["actions"].get(action, 0) / records if records else 0.0)
                for action in ACTIONS
            ],
            title=t["actions_share"],
            description=t["actions_share_desc"],
        )
        head = "".join(f'<th scope="col" class="n">{_e(t[a])}</th>' for a in ACTIONS)
        rows = "".join(
            f'<tr><th scope="row">{_e(label)}</th>'
            + "".join(
                f'<td class="n">{periods.get(label, {}).get("actions", {}).get(a, 0)}</td>'
                for a in ACTIONS
            )
            + "</tr>"
            for label in data.labels
        )
        table = (
            f"<details><summary>{_e(t['as_table'])}</summary><table>"
            f"<caption>{_e(t['per_day'])}</caption><thead><tr>"
            f'<th scope="col">{_e(t["period"])}</th>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></details>"
        )
        return (
            f'<section aria-labelledby="decisions"><h2 id="decisions">{_e(t["per_day"])}</h2>'
            f"{chart}{table}<h3>{_e(t['actions_share'])}</h3>{share}</section>"
        )

    def _rates(self, language: Language, data: DashboardData) -> str:
        t = TEXTS[language]
        stats = data.stats
        by = t[RANGES[data.range][1]]
        services = self._service_names(stats["services"])
        categories = self._category_names(language, stats["categories"])
        out = [f'<section aria-labelledby="rates"><h2 id="rates">{_e(t["service_rates"])}</h2>']
        for kind, names, title, desc in (
            ("services", services, t["service_rates"], t["service_rates_desc"]),
            ("categories", categories, t["category_rates"], t["category_rates_desc"]),
        ):
            series = [
                Series(
                    name,
                    [
                        stats["periods"]
                        .get(label, {})
                        .get(kind, {})
                        .get(key, {})
                        .get("opt_in_rate")
                        for label in data.labels
                    ],
                )
                for key, name in names.items()
            ]
            if kind == "categories":
                out.append(f"<h3>{_e(title)}</h3>")
            out.append(
                line_chart(
                    data.labels,
                    series,
                    title=title,
                    description=desc.format(by=by),
                    no_data=t["no_data"],
                )
            )
            out.append(self._rate_table(language, title, names, data, kind))
        out.append(self._totals_table(language, services, stats))
        out.append("</section>")
        return "".join(out)

    def _service_names(self, services: Mapping[str, Any]) -> dict[str, str]:
        configured = self.settings.services
        names = {sid: s.name for sid, s in configured.items()}
        for sid in services:
            names.setdefault(sid, sid)  # a service since removed from the settings
        return names

    def _category_names(self, language: Language, categories: Mapping[str, Any]) -> dict[str, str]:
        texts: dict[str, CategoryText] = {
            str(k): v for k, v in self.settings.texts[language].categories.items()
        }
        names: dict[str, str] = {
            c: texts[c].name
            for c in CATEGORIES
            if c != "necessary" and any(s.category == c for s in self.settings.services.values())
        }
        for c in categories:
            if c not in names and c != "necessary":
                names[c] = texts[c].name if c in texts else TEXTS[language]["unknown"]
        return names

    def _rate_table(
        self,
        language: Language,
        title: str,
        names: Mapping[str, str],
        data: DashboardData,
        kind: str,
    ) -> str:
        t = TEXTS[language]
        head = "".join(f'<th scope="col" class="n">{_e(name)}</th>' for name in names.values())
        rows = "".join(
            f'<tr><th scope="row">{_e(label)}</th>'
            + "".join(
                f'<td class="n">{_percent(_rate_of(data.stats, label, kind, key), language)}</td>'
                for key in names
            )
            + "</tr>"
            for label in data.labels
        )
        return (
            f"<details><summary>{_e(t['as_table'])}</summary><table>"
            f"<caption>{_e(title)}</caption><thead><tr>"
            f'<th scope="col">{_e(t["period"])}</th>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></details>"
        )

    def _totals_table(
        self, language: Language, services: Mapping[str, str], stats: Mapping[str, Any]
    ) -> str:
        t = TEXTS[language]
        rows = []
        for sid, name in services.items():
            entry = stats["services"].get(sid, {"granted": 0, "offered": 0, "opt_in_rate": None})
            service = self.settings.services.get(sid)
            category = service.category if service is not None else None
            category_name = (
                self.settings.texts[language].categories[category].name if category else ""
            )
            rows.append(
                f'<tr><th scope="row">{_e(name)}</th><td>{_e(category_name)}</td>'
                f'<td class="n">{entry["granted"]}</td><td class="n">{entry["offered"]}</td>'
                f'<td class="n">{_percent(entry["opt_in_rate"], language)}</td></tr>'
            )
        return (
            f"<table><caption>{_e(t['totals'])}</caption><thead><tr>"
            f'<th scope="col">{_e(t["service"])}</th><th scope="col">{_e(t["category"])}</th>'
            f'<th scope="col" class="n">{_e(t["granted"])}</th>'
            f'<th scope="col" class="n">{_e(t["offered"])}</th>'
            f'<th scope="col" class="n">{_e(t["rate"])}</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    def _audit(self, language: Language, data: DashboardData) -> str:
        t = TEXTS[language]
        if not data.findings:
            listing = f"<p>{_e(t['audit_none'])}</p>"
        else:
            items = "".join(f"<li>{_e(describe(f, language))}</li>" for f in data.findings[:200])
            listing = (
                f'<ul class="findings">{items}</ul>'
                f'<form method="post" action="{_e(self.base)}audit/clear">'
                f'<input type="hidden" name="lang" value="{language}">'
                f'<button class="secondary" type="submit">{_e(t["audit_clear"])}</button></form>'
            )
        return (
            f'<section aria-labelledby="audit"><h2 id="audit">{_e(t["audit"])}</h2>'
            f'<p class="note">{_e(t["audit_intro"])}</p>{listing}</section>'
        )

    def _export(self, language: Language) -> str:
        t = TEXTS[language]
        prefix = self.settings.prefix
        declaration = prefix + "/declaration?" + urlencode({"lang": language})
        return (
            f'<section aria-labelledby="export"><h2 id="export">{_e(t["export"])}</h2>'
            f'<p class="note">{_e(t["export_intro"])}</p>'
            f'<form class="inline" method="get" action="{_e(self.base)}export">'
            f'<label for="format">{_e(t["format"])}<select id="format" name="format">'
            '<option value="csv">CSV (Excel)</option><option value="jsonl">JSON Lines</option>'
            "</select></label>"
            f'<label for="since">{_e(t["since"])}'
            '<input id="since" name="since" type="date"></label>'
            f'<label for="until">{_e(t["until"])}'
            '<input id="until" name="until" type="date"></label>'
            f'<button type="submit">{_e(t["download"])}</button></form>'
            f'<h3>{_e(t["declaration"])}</h3><p><a href="{_e(declaration)}">'
            f"{_e(t['declaration_link'].format(revision=self.settings.revision))}</a></p>"
            "</section>"
        )


def period_labels(
    stats: Mapping[str, Any], first_day: str | None, last_day: str, by: str
) -> list[str]:
    """Return the x-axis labels: every day, ISO week or month from the range's start to today.

    Periods without decisions are listed too, so charts keep time to scale. Without a start
    (everything stored), the first period with decisions starts the axis.
    """
    keys: Sequence[str] = sorted(stats["periods"])
    end = date.fromisoformat(last_day)
    if first_day is not None:
        day = date.fromisoformat(first_day)
    elif keys:
        day = _period_start(keys[0], by)
    else:
        return []
    labels: list[str] = []
    while day <= end:
        key = _period_key(day, by)
        if not labels or labels[-1] != key:
            labels.append(key)
        day += timedelta(days=1)
    # A decision dated after "today" (a clock running ahead) still shows.
    return labels + [k for k in keys if k > labels[-1]] if labels else list(keys)


def _period_key(day: date, by: str) -> str:
    if by == "day":
        return day.isoformat()
    if by == "month":
        return day.isoformat()[:7]
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _period_start(key: str, by: str) -> date:
    if by == "month":
        return date.fromisoformat(key + "-01")
    if by == "week":
        year, week = key.split("-W")
        return date.fromisocalendar(int(year), int(week), 1)
    return date.fromisoformat(key)
