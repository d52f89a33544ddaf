"""The pages and settings the rewrite benchmarks run on.

``realistic_page`` renders an ~80 KB page of a German municipal utility the way such sites look
in the wild: a big navigation, tariff tables, forms, first-party scripts and styles, JSON-LD,
comments, and the install snippets of all eight preset vendors pasted as their instructions
say. ``bench_settings`` enables those eight presets.
"""

from __future__ import annotations

import functools
import json
import random
import tempfile
from html import escape
from pathlib import Path
from typing import Any

from consentgate.config import Settings, preset_ids
from example_site.pages import (  # the example site's real vendor snippets
    ECONDA_HEAD,
    ETRACKER,
    GOOGLE_ADS,
    GOOGLE_MAPS_EMBED,
    GTM_BODY,
    GTM_HEAD,
    MATOMO,
    META_PIXEL,
    YOUTUBE_EMBED,
)

#: Size the page body is filled up to (bytes of UTF-8).
TARGET_BYTES = 80_000
#: The self-hosted Matomo of the page, also given to the ``matomo`` preset.
MATOMO_URL = "https://statistik.stadtwerke-musterstadt.de/"
#: The host the page is served from.
SITE_HOST = "www.stadtwerke-musterstadt.de"

# --- Vendor snippets, as each vendor's instructions have them ---------------------------------
RESOURCE_HINTS = """<link rel="preconnect" href="https://www.googletagmanager.com">
<link rel="dns-prefetch" href="//www.googletagmanager.com">
<link rel="preconnect" href="https://connect.facebook.net" crossorigin>
<link rel="dns-prefetch" href="//connect.facebook.net">
<link rel="preconnect" href="https://code.etracker.com">
<link rel="dns-prefetch" href="//code.etracker.com">"""


ECONDA_BODY = """<script type="text/javascript" src="/js/emos3.js" async="async"></script>
<script type="text/javascript">
  window.emos3.send({
    content: 'Privatkunden/Strom/Tarife',
    pageId: 'strom-tarife',
    langid: 'de'
  });
</script>"""

# --- First-party parts ---------------------------------------------------------------------------
CRITICAL_CSS = """<style>
:root{--swm-blau:#004b8d;--swm-gruen:#5fa82b;--swm-grau:#f2f4f6;--radius:.375rem}
*,*::before,*::after{box-sizing:border-box}
html{font-family:"Source Sans Pro",Arial,sans-serif;line-height:1.5;-webkit-text-size-adjust:100%}
body{margin:0;color:#1d1d1b;background:#fff}
.skip-link{position:absolute;left:-999px;top:0}.skip-link:focus{left:1rem;z-index:1000}
.site-header{display:flex;align-items:center;justify-content:space-between;padding:1rem 2rem}
.site-header__logo svg{height:48px;width:auto}
.main-nav>ul{display:flex;gap:1.5rem;list-style:none;margin:0;padding:0}
.main-nav a{color:var(--swm-blau);text-decoration:none;font-weight:600}
.main-nav a[aria-current="page"]{border-bottom:3px solid var(--swm-gruen)}
.mega-menu{display:none;position:absolute;background:#fff;box-shadow:0 8px 24px rgba(0,0,0,.12)}
.hero{position:relative;min-height:420px;background:var(--swm-grau)}
.hero__title{font-size:clamp(1.75rem,4vw,3rem);color:var(--swm-blau);margin:0 0 1rem}
.tariff-table{width:100%;border-collapse:collapse;margin:2rem 0}
.tariff-table th,.tariff-table td{padding:.75rem;border-bottom:1px solid #d5dbe1;text-align:left}
.tariff-table tbody tr:nth-child(odd){background:var(--swm-grau)}
.btn{display:inline-block;padding:.75rem 1.5rem;border-radius:var(--radius);font-weight:600}
.btn--primary{background:var(--swm-gruen);color:#fff}
.teaser-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:2rem}
@media (max-width:768px){.main-nav>ul{display:none}.site-header{padding:.5rem 1rem}}
</style>"""

LOGO_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 240 60" role="img" \
aria-labelledby="logo-title"><title id="logo-title">Stadtwerke Musterstadt</title>\
<path fill="#004b8d" d="M10 50V10h12l8 20 8-20h12v40h-9V27l-8 19h-6l-8-19v23z"/>\
<path fill="#5fa82b" d="M58 30a20 20 0 1 0 40 0 20 20 0 1 0-40 0zm8 0a12 12 0 1 1 24 0 12 12 0 \
1 1-24 0z"/><text x="108" y="38" font-size="18" fill="#004b8d">Stadtwerke</text></svg>"""

NAV = {
    "Privatkunden": [
        ("Strom", "/privatkunden/strom"),
        ("Ökostrom MusterGrün", "/privatkunden/strom/oekostrom"),
        ("Erdgas", "/privatkunden/erdgas"),
        ("Wärme & Fernwärme", "/privatkunden/waerme"),
        ("Wasser", "/privatkunden/wasser"),
        ("Glasfaser & Internet", "/privatkunden/glasfaser"),
        ("E-Mobilität & Wallbox", "/privatkunden/e-mobilitaet"),
        ("Photovoltaik & Speicher", "/privatkunden/photovoltaik"),
        ("Umzug", "/privatkunden/umzug"),
        ("Tarifrechner", "/privatkunden/tarifrechner"),
    ],
    "Geschäftskunden": [
        ("Strom für Gewerbe", "/geschaeftskunden/strom"),
        ("Erdgas für Gewerbe", "/geschaeftskunden/erdgas"),
        ("Energiedienstleistungen", "/geschaeftskunden/energiedienstleistungen"),
        ("Contracting", "/geschaeftskunden/contracting"),
        ("Ladeinfrastruktur", "/geschaeftskunden/ladeinfrastruktur"),
        ("Wohnungswirtschaft", "/geschaeftskunden/wohnungswirtschaft"),
    ],
    "Service": [
        ("Zählerstand melden", "/service/zaehlerstand"),
        ("Abschlag ändern", "/service/abschlag"),
        ("Bankverbindung ändern", "/service/bankverbindung"),
        ("Rechnung erklärt", "/service/rechnung-erklaert"),
        ("Störung melden", "/service/stoerung"),
        ("Hausanschluss", "/service/hausanschluss"),
        ("Formulare & Downloads", "/service/downloads"),
        ("Häufige Fragen", "/service/faq"),
    ],
    "Unternehmen": [
        ("Über uns", "/unternehmen/ueber-uns"),
        ("Nachhaltigkeit", "/unternehmen/nachhaltigkeit"),
        ("Karriere", "/unternehmen/karriere"),
        ("Presse", "/unternehmen/presse"),
        ("Bäder", "/unternehmen/baeder"),
        ("Netze Musterstadt GmbH", "/unternehmen/netze"),
        ("Ausschreibungen", "/unternehmen/ausschreibungen"),
    ],
}

SENTENCES = (
    "Als Ihr Energieversorger vor Ort liefern wir seit über 150 Jahren zuverlässig Strom, "
    "Erdgas, Wärme und Trinkwasser in Musterstadt und der Region.",
    "Unser Ökostrom stammt zu 100 Prozent aus erneuerbaren Energien und ist vom TÜV "
    "Süd zertifiziert.",
    "Mit dem Tarifrechner finden Sie in wenigen Schritten den passenden Tarif für Ihren Haushalt.",
    "Bitte melden Sie Ihren Zählerstand bis spätestens 31. Dezember über das Kundenportal, "
    "per Postkarte oder telefonisch.",
    "Die Abschlagszahlungen berechnen wir auf Grundlage Ihres Verbrauchs im vergangenen "
    "Abrechnungszeitraum.",
    "Bei einer Störung im Strom-, Gas- oder Wassernetz erreichen Sie unseren Bereitschaftsdienst "
    "rund um die Uhr unter 0800 123 45 67.",
    "Wer umzieht, kann seinen Vertrag einfach mitnehmen: Teilen Sie uns Ihre neue Adresse und "
    "den Zählerstand am Auszugstag mit.",
    "Die Preisgarantie umfasst den Energiepreis und den Netzanteil, ausgenommen sind Steuern, "
    "Abgaben und Umlagen.",
    "Unsere Fernwärme wird in der Kraft-Wärme-Kopplungsanlage am Hafen besonders effizient "
    "erzeugt.",
    "Für Elektroautos betreiben wir mehr als 60 öffentliche Ladepunkte im Stadtgebiet, "
    "die Sie mit der MusterStrom-Ladekarte günstiger nutzen.",
    "Der Glasfaserausbau erreicht in diesem Jahr die Ortsteile Nordheim, Südfeld und Weißenbach.",
    "Im Kundencenter am Marktplatz beraten wir Sie montags bis freitags von 8 bis 18 Uhr "
    "persönlich.",
    "Änderungen Ihrer Bankverbindung oder Ihres Abschlags erledigen Sie bequem online, "
    "ohne Wartezeit.",
    "Unsere Trinkwasserqualität wird regelmäßig vom Gesundheitsamt überprüft und übertrifft "
    "die Grenzwerte der Trinkwasserverordnung deutlich.",
    "Mit einer Photovoltaikanlage auf dem eigenen Dach und einem Batteriespeicher senken Sie "
    "Ihre Stromkosten dauerhaft.",
    "Die Grundversorgung greift automatisch, wenn Sie keinen Sondervertrag abgeschlossen haben.",
    "Neukunden erhalten im ersten Vertragsjahr einen Bonus von 50 € auf ihre Jahresrechnung.",
    "Sie können Ihren Vertrag mit einer Frist von einem Monat kündigen, frühestens zum Ende "
    "der Erstlaufzeit.",
    "Seit 2021 investieren wir jedes Jahr rund 12 Millionen € in die Modernisierung unserer Netze.",
    "Das Freibad am Stadtpark öffnet ab Mai täglich von 9 bis 20 Uhr, bei schönem Wetter "
    "auch länger.",
    "Förderprogramme von Bund, Land und Stadtwerken machen den Umstieg auf eine Wärmepumpe "
    "attraktiver als je zuvor.",
    "Ihre Daten behandeln wir vertraulich und ausschließlich nach den Vorgaben der DSGVO.",
    "Für Fragen zur Rechnung hilft Ihnen unser Serviceteam gern weiter – auch per E-Mail "
    "oder im Chat.",
    "Großverbraucher ab 100.000 kWh im Jahr erhalten ein individuelles Angebot mit "
    "registrierender Leistungsmessung.",
)

TARIFFS = (
    ("MusterStrom Basis", "Strom", 12.90, 38.45, "keine"),
    ("MusterStrom Fix 24", "Strom", 11.50, 34.20, "24 Monate"),
    ("MusterStrom Öko", "Strom", 12.90, 35.90, "12 Monate"),
    ("MusterStrom Wärmepumpe", "Strom", 9.50, 27.80, "12 Monate"),
    ("MusterStrom Auto", "Strom", 9.50, 29.10, "12 Monate"),
    ("MusterGas Basis", "Erdgas", 14.90, 11.95, "keine"),
    ("MusterGas Fix 24", "Erdgas", 13.50, 10.40, "24 Monate"),
    ("MusterGas Klima", "Erdgas", 13.50, 11.10, "12 Monate"),
    ("MusterWärme Komfort", "Fernwärme", 21.00, 13.75, "10 Jahre"),
)

NEWS = (
    ("Neue Ladesäulen am Bahnhof", "/aktuelles/ladesaeulen-bahnhof", "ladesaeulen.jpg"),
    ("Glasfaser für Weißenbach", "/aktuelles/glasfaser-weissenbach", "glasfaser.jpg"),
    ("Preise für 2025 bleiben stabil", "/aktuelles/preise-2025", "preise.jpg"),
    ("Freibad-Saison startet", "/aktuelles/freibad-saison", "freibad.jpg"),
    ("Solarpark Südfeld am Netz", "/aktuelles/solarpark-suedfeld", "solarpark.jpg"),
    ("Ausbildung bei den Stadtwerken", "/aktuelles/ausbildung", "ausbildung.jpg"),
    ("Trinkwasser: Ergebnisse der Analyse", "/aktuelles/trinkwasser-analyse", "wasser.jpg"),
    ("Wärmeplanung: Infoabend im Rathaus", "/aktuelles/waermeplanung", "waerme.jpg"),
)

FAQ = (
    ("Wie melde ich meinen Zählerstand?", "Online im Kundenportal, per App oder telefonisch."),
    ("Wann kommt meine Jahresrechnung?", "In der Regel vier bis sechs Wochen nach der Ablesung."),
    ("Kann ich meinen Abschlag ändern?", "Ja, im Kundenportal unter „Verträge“ jederzeit."),
    ("Was tun bei Gasgeruch?", "Fenster öffnen, keine Schalter betätigen, 0800 123 45 68 anrufen."),
    ("Wie wechsle ich zu Ökostrom?", "Im Tarifrechner „MusterStrom Öko“ wählen – fertig."),
    ("Gibt es einen Sozialtarif?", "Ja, für Inhaber des Musterstadt-Passes; sprechen Sie uns an."),
)


def _paragraph(rng: random.Random) -> str:
    return "<p>" + escape(" ".join(rng.sample(SENTENCES, rng.randint(3, 6)))) + "</p>"


def _euro(value: float) -> str:
    return f"{value:.2f}".replace(".", ",")


def _nav() -> str:
    parts = ['<nav class="main-nav" aria-label="Hauptnavigation"><ul>']
    for index, (section, links) in enumerate(NAV.items()):
        parts.append(
            f'<li class="main-nav__item"><a href="/{escape(section.lower())}" '
            f'aria-expanded="false" aria-controls="mega-{index}">{escape(section)}</a>'
            f'<div class="mega-menu" id="mega-{index}"><ul>'
        )
        for label, href in links:
            marker = ' aria-current="page"' if href == "/privatkunden/strom" else ""
            parts.append(f'<li><a href="{href}"{marker}>{escape(label)}</a></li>')
        parts.append("</ul></div></li>")
    parts.append("</ul></nav>")
    return "\n".join(parts)


def _tariff_table(rng: random.Random, kind: str) -> str:
    rows = []
    for name, energy, base, work, term in TARIFFS:
        if energy != kind and kind != "alle":
            continue
        usage = rng.choice((1500, 2500, 3500, 4500)) if energy == "Strom" else 15000
        yearly = base * 12 + work * usage / 100
        rows.append(
            f'<tr data-tarif="{escape(name.lower().replace(" ", "-"))}">'
            f'<th scope="row">{escape(name)}</th><td>{energy}</td>'
            f"<td>{_euro(base)} €/Monat</td><td>{_euro(work)} ct/kWh</td>"
            f"<td>{escape(term)}</td><td>{usage:,} kWh: {_euro(yearly)} €</td>"
            f'<td><a class="btn btn--primary" href="/abschluss?tarif={rng.randint(100, 999)}'
            f'&amp;plz=12345">Jetzt wechseln</a></td></tr>'
        )
    return (
        f'<table class="tariff-table"><caption>Tarife {escape(kind)} '
        '(alle Preise brutto inkl. 19 % MwSt.)</caption><thead><tr><th scope="col">Tarif</th>'
        '<th scope="col">Energie</th><th scope="col">Grundpreis</th>'
        '<th scope="col">Arbeitspreis</th><th scope="col">Preisgarantie</th>'
        '<th scope="col">Beispiel</th><th scope="col"><span class="sr-only">Aktion</span></th>'
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _teasers(rng: random.Random) -> str:
    items = []
    for title, href, image in rng.sample(NEWS, 4):
        day = rng.randint(1, 28)
        items.append(
            f'<article class="teaser"><a href="{href}"><picture>'
            f'<source type="image/webp" srcset="/media/news/{image[:-4]}-400.webp 400w, '
            f'/media/news/{image[:-4]}-800.webp 800w">'
            f'<img src="/media/news/{image}" width="400" height="225" loading="lazy" '
            f'alt="{escape(title)}"></picture><h3>{escape(title)}</h3></a>'
            f'<time datetime="2024-05-{day:02d}">{day}. Mai 2024</time>{_paragraph(rng)}'
            "</article>"
        )
    return '<section class="teaser-grid" aria-label="Aktuelles">' + "".join(items) + "</section>"


def _faq(rng: random.Random) -> str:
    items = [
        f"<details><summary>{escape(q)}</summary><p>{escape(a)}</p>{_paragraph(rng)}</details>"
        for q, a in rng.sample(FAQ, len(FAQ))
    ]
    return '<section class="faq"><h2>Häufige Fragen</h2>' + "".join(items) + "</section>"


def _calculator_form(token: str) -> str:
    return f"""<form class="tarifrechner" action="/privatkunden/tarifrechner" method="post">
<input type="hidden" name="csrf_token" value="{token}">
<fieldset><legend>Ihr Tarif in drei Schritten</legend>
<label for="plz">Postleitzahl</label>
<input id="plz" name="plz" inputmode="numeric" pattern="[0-9]{{5}}" required \
autocomplete="postal-code">
<label for="verbrauch">Jahresverbrauch in kWh</label>
<input id="verbrauch" name="verbrauch" type="number" min="500" max="100000" step="100" value="2500">
<div role="radiogroup" aria-label="Personen im Haushalt">
<label><input type="radio" name="personen" value="1"> 1 Person</label>
<label><input type="radio" name="personen" value="2" checked> 2 Personen</label>
<label><input type="radio" name="personen" value="3"> 3 Personen</label>
<label><input type="radio" name="personen" value="4"> 4 und mehr</label>
</div>
<label for="energie">Energie</label>
<select id="energie" name="energie"><option value="strom" selected>Strom</option>
<option value="gas">Erdgas</option><option value="waerme">Fernwärme</option></select>
<label><input type="checkbox" name="oeko" value="1" checked> Nur Ökostrom-Tarife zeigen</label>
<button class="btn btn--primary" type="submit">Tarife berechnen</button>
</fieldset></form>"""


NEWSLETTER_FORM = """<form class="newsletter" action="/newsletter/anmelden" method="post" \
novalidate>
<h2>Energiespartipps per E-Mail</h2>
<label for="nl-email">E-Mail-Adresse</label>
<input id="nl-email" type="email" name="email" required autocomplete="email" \
placeholder="name@beispiel.de">
<label class="checkbox"><input type="checkbox" name="einwilligung" required> Ich möchte den \
Newsletter erhalten und habe die <a href="/datenschutz">Datenschutzerklärung</a> gelesen.</label>
<button class="btn" type="submit">Anmelden</button></form>"""


def _json_ld() -> str:
    data = {
        "@context": "https://schema.org",
        "@type": "LocalBusiness",
        "name": "Stadtwerke Musterstadt GmbH",
        "url": f"https://{SITE_HOST}/",
        "logo": f"https://{SITE_HOST}/media/logo.svg",
        "telephone": "+49 1234 567-0",
        "address": {
            "@type": "PostalAddress",
            "streetAddress": "Am Marktplatz 5",
            "postalCode": "12345",
            "addressLocality": "Musterstadt",
            "addressCountry": "DE",
        },
        "openingHoursSpecification": [
            {
                "@type": "OpeningHoursSpecification",
                "dayOfWeek": d,
                "opens": "08:00",
                "closes": "18:00",
            }
            for d in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
        ],
    }
    body = json.dumps(data, ensure_ascii=False, indent=2).replace("</", "<\\/")
    return f'<script type="application/ld+json">\n{body}\n</script>'


def _footer(rng: random.Random) -> str:
    columns = []
    for section, links in NAV.items():
        items = "".join(f'<li><a href="{href}">{escape(label)}</a></li>' for label, href in links)
        columns.append(f"<div><h2>{escape(section)}</h2><ul>{items}</ul></div>")
    socials = "".join(
        f'<a href="https://{host}/stadtwerkemusterstadt" rel="noopener" target="_blank">'
        f'<img src="/media/icons/{name}.svg" width="24" height="24" alt="{name}"></a>'
        for name, host in (
            ("facebook", "www.facebook.com"),
            ("instagram", "www.instagram.com"),
            ("linkedin", "www.linkedin.com"),
            ("youtube", "www.youtube.com"),
        )
    )
    return (
        '<footer class="site-footer"><div class="site-footer__columns">'
        + "".join(columns)
        + f'</div><div class="social">{socials}</div>'
        + "<p>Stadtwerke Musterstadt GmbH · Am Marktplatz 5 · 12345 Musterstadt · "
        + f"Amtsgericht Musterstadt HRB {rng.randint(1000, 9999)}</p>"
        + '<ul class="legal"><li><a href="/impressum">Impressum</a></li>'
        + '<li><a href="/datenschutz">Datenschutz</a></li>'
        + '<li><a href="/_consent/settings" data-consentgate-open>Cookie-Einstellungen</a></li>'
        + '<li><a href="/barrierefreiheit">Barrierefreiheit</a></li></ul></footer>'
    )


_UNIQUE_MARK = "\x00UNIQUE\x00"


@functools.cache
def _page_parts(seed: int) -> tuple[bytes, bytes, bytes]:
    """Return the page split around the CSRF token: (before, default token, after)."""
    rng = random.Random(seed)
    version = rng.randint(10_000, 99_999)
    head = f"""<!DOCTYPE html>
<html lang="de">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Stromtarife für Musterstadt – Stadtwerke Musterstadt</title>
<meta name="description" content="Günstiger Strom und Ökostrom von Ihren Stadtwerken: \
Tarife vergleichen, online wechseln, persönlich beraten lassen.">
<link rel="canonical" href="https://{SITE_HOST}/privatkunden/strom">
<meta property="og:title" content="Stromtarife für Musterstadt">
<meta property="og:image" content="https://{SITE_HOST}/media/og/strom.jpg">
<link rel="icon" href="/favicon.ico" sizes="any">
<link rel="icon" href="/media/icon.svg" type="image/svg+xml">
<link rel="apple-touch-icon" href="/media/apple-touch-icon.png">
<link rel="manifest" href="/site.webmanifest">
{GTM_HEAD}
{RESOURCE_HINTS}
<link rel="preload" href="/fonts/source-sans-pro-v21-latin-regular.woff2" as="font" \
type="font/woff2" crossorigin>
<link rel="stylesheet" href="/css/main.css?v={version}">
<link rel="stylesheet" href="/css/print.css?v={version}" media="print">
{CRITICAL_CSS}
<script>document.documentElement.className = \
document.documentElement.className.replace("no-js", "js");</script>
<script src="/js/vendor/jquery-3.7.1.min.js" defer></script>
<script src="/js/app.js?v={version}" defer></script>
{GOOGLE_ADS}
{ETRACKER}
{MATOMO}
{META_PIXEL}
{ECONDA_HEAD}
{_json_ld()}
</head>
"""
    body = [
        '<body class="page page--strom no-js">',
        GTM_BODY,
        '<a class="skip-link" href="#inhalt">Zum Inhalt springen</a>',
        '<header class="site-header"><a class="site-header__logo" href="/">' + LOGO_SVG + "</a>",
        _nav(),
        '<form class="search" action="/suche" role="search"><label for="q" class="sr-only">'
        'Suche</label><input id="q" name="q" type="search" placeholder="Suchbegriff">'
        '<button type="submit">Suchen</button></form></header>',
        '<nav class="breadcrumb" aria-label="Brotkrumen"><ol><li><a href="/">Start</a></li>'
        '<li><a href="/privatkunden">Privatkunden</a></li><li aria-current="page">Strom</li>'
        "</ol></nav>",
        '<main id="inhalt">',
        '<section class="hero"><picture><source media="(min-width: 768px)" '
        'srcset="/media/hero/strom-1600.webp 1600w, /media/hero/strom-2400.webp 2400w">'
        '<img src="/media/hero/strom-800.jpg" width="800" height="420" alt="Windräder über '
        'Musterstadt bei Sonnenuntergang" fetchpriority="high"></picture>'
        '<div class="hero__content"><h1 class="hero__title">Strom aus Musterstadt – fair, '
        "regional, grün</h1>"
        + _paragraph(rng)
        + '<a class="btn btn--primary" href="#tarifrechner">Tarif berechnen</a></div></section>',
        "<!-- Tarifrechner: Token wird pro Sitzung erzeugt -->",
        '<section id="tarifrechner">' + _calculator_form(_UNIQUE_MARK) + "</section>",
        "<h2>Unsere Stromtarife</h2>",
        _paragraph(rng),
        _tariff_table(rng, "Strom"),
        _paragraph(rng),
        '<section class="video"><h2>Ökostrom erklärt</h2>'
        + YOUTUBE_EMBED
        + _paragraph(rng)
        + "</section>",
        "<h2>Erdgas und Wärme</h2>",
        _tariff_table(rng, "Erdgas"),
        _tariff_table(rng, "Fernwärme"),
        _teasers(rng),
        _faq(rng),
        '<section class="kundencenter"><h2>Besuchen Sie uns</h2>'
        + GOOGLE_MAPS_EMBED
        + "<address>Kundencenter<br>Am Marktplatz 5<br>12345 Musterstadt<br>"
        '<a href="tel:+4912345670">01234 567-0</a></address></section>',
    ]
    tail = [
        "</main>",
        NEWSLETTER_FORM,
        _footer(rng),
        '<script src="/js/consent-banner-hooks.js?v=' + str(version) + '" defer></script>',
        "<script>window.SWM = {plz: null, apiBase: '/api/v2', locale: 'de-DE', "
        "features: {chat: true, tarifrechner: true}};</script>",
        ECONDA_BODY,
        "</body>\n</html>\n",
    ]
    text = head + "\n".join(body)
    filler = 0
    tail_text = "\n".join(tail)
    while len((text + tail_text).encode()) < TARGET_BYTES - 900:
        filler += 1
        text += (
            f'\n<!-- Inhaltsblock {filler} -->\n<section class="content-block" '
            f'id="block-{filler}"><h2>{escape(rng.choice(SENTENCES)[:48])}</h2>'
            + _paragraph(rng)
            + (
                f'<figure><img src="/media/content/bild-{rng.randint(1, 40)}.jpg" width="640" '
                'height="360" loading="lazy" alt=""><figcaption>'
                + escape(rng.choice(SENTENCES))
                + "</figcaption></figure>"
                if filler % 2
                else ""
            )
            + _paragraph(rng)
            + "</section>"
        )
    text += "\n" + tail_text
    before, after = text.split(_UNIQUE_MARK)
    token = f"{rng.getrandbits(128):032x}"
    return before.encode(), token.encode(), after.encode()


def realistic_page(seed: int = 0, *, unique: str = "") -> bytes:
    """Return an ~80 KB UTF-8 page of a German utility with all eight vendors' snippets.

    ``seed`` varies the text deterministically; ``unique`` becomes the form's CSRF token, so
    every distinct value gives a distinct body (rendering stays cheap: the rest is cached).
    """
    before, token, after = _page_parts(seed)
    return before + (escape(unique).encode() if unique else token) + after


@functools.cache
def json_body() -> bytes:
    """Return a small JSON document, as an API endpoint of the site would answer."""
    data = {
        "plz": "12345",
        "ort": "Musterstadt",
        "netzbetreiber": "Netze Musterstadt GmbH",
        "tarife": [{"id": "musterstrom-oeko", "arbeitspreis_ct": 35.9, "grundpreis_eur": 12.9}],
    }
    return json.dumps(data, ensure_ascii=False).encode()


def bench_settings_data(folder: str | Path | None = None) -> dict[str, Any]:
    """Return the settings mapping of ``bench_settings`` (JSON-serializable)."""
    if folder is None:
        folder = Path(tempfile.gettempdir()) / "consentgate-bench"
        folder.mkdir(exist_ok=True)
    services: dict[str, Any] = {
        service_id: ({"url": MATOMO_URL} if service_id == "matomo" else {})
        for service_id in preset_ids()
    }
    return {
        "secret_keys": ["bench-signing-key-" + "x" * 32],
        "store_url": f"sqlite:///{Path(folder).resolve()}/bench.db",
        "services": services,
    }


def bench_settings(folder: str | Path | None = None) -> Settings:
    """Return settings enabling all eight presets; the ledger lives in ``folder``.

    Without ``folder`` the ledger goes to ``<tmp>/consentgate-bench/bench.db``.
    """
    return Settings.from_mapping(bench_settings_data(folder))
