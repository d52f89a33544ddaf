"""The pages of Stadtwerke Musterstadt and their common layout, rendered as plain strings.

The vendor snippets below are pasted the way each vendor's instructions say, with placeholder
account ids, and nothing in them is marked for consentgate: finding and blocking them is the
middleware's job. Every value that is not a literal is passed through ``html.escape`` (or, inside
``<script>``, through ``_js_string``).
"""

from __future__ import annotations

import json
from html import escape
from typing import Protocol

from consentgate.widgets import Declaration

SITE_NAME = "Stadtwerke Musterstadt"

#: Main navigation: (path, label).
MAIN_NAV = (
    ("/", "Start"),
    ("/strom", "Strom"),
    ("/kundencenter", "Kundencenter"),
    ("/ueber-uns", "Über uns"),
)
#: Footer navigation: (path, label).
LEGAL_NAV = (
    ("/datenschutz", "Datenschutz"),
    ("/impressum", "Impressum"),
)

#: The services of consentgate.toml, in the order the privacy policy lists them.
SERVICES = (
    ("etracker", "etracker Analytics"),
    ("google_ads", "Google Ads Conversion-Tracking"),
    ("google_tag_manager", "Google Tag Manager"),
    ("facebook_pixel", "Meta-Pixel (Facebook)"),
    ("matomo", "Matomo"),
    ("youtube", "YouTube (erweiterter Datenschutzmodus)"),
    ("google_maps", "Google Maps"),
    ("econda", "econda Analytics"),
)


class ConsentState(Protocol):
    """The visitor's consent as consentgate puts it into ``scope["consentgate"]``."""

    @property
    def decided(self) -> bool: ...

    @property
    def consent_id(self) -> str | None: ...

    @property
    def granted(self) -> frozenset[str]: ...

    def allows(self, service_id: str) -> bool: ...


# --- Vendor snippets -------------------------------------------------------------------------
# Google Tag Manager, "Install Google Tag Manager" dialog: the first part goes as high in
# <head> as possible, the second immediately after the opening <body> tag.
GTM_HEAD = """<!-- Google Tag Manager -->
<script>(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':
new Date().getTime(),event:'gtm.js'});var f=d.getElementsByTagName(s)[0],
j=d.createElement(s),dl=l!='dataLayer'?'&l='+l:'';j.async=true;j.src=
'https://www.googletagmanager.com/gtm.js?id='+i+dl;f.parentNode.insertBefore(j,f);
})(window,document,'script','dataLayer','GTM-ABC1234');</script>
<!-- End Google Tag Manager -->"""

GTM_BODY = """<!-- Google Tag Manager (noscript) -->
<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-ABC1234"
height="0" width="0" style="display:none;visibility:hidden"></iframe></noscript>
<!-- End Google Tag Manager (noscript) -->"""

# Resource hints an operator adds for the Google and Meta tags.
RESOURCE_HINTS = """<link rel="preconnect" href="https://www.googletagmanager.com">
<link rel="dns-prefetch" href="//connect.facebook.net">"""

# etracker code as generated under "Einstellungen > Tracking-Code" (code 5.x/6.x: cookie-less
# by default, data-block-cookies="true"); the parameter block is optional.
ETRACKER = """<!-- etracker code 6.0 -->
<script type="text/javascript">
// var et_pagename = "";
// var et_areas = "";
</script>
<script id="_etLoader" type="text/javascript" charset="UTF-8" data-block-cookies="true" \
data-respect-dnt="true" data-secure-code="XyZ123" src="//code.etracker.com/code/e.js" \
async></script>
<!-- etracker code 6.0 end -->"""

# Matomo "Tracking Code" page (plugins/Morpheus/templates/javascriptCode.twig), with the
# "track users with JavaScript disabled" option switched on.
MATOMO = """<!-- Matomo -->
<script>
  var _paq = window._paq = window._paq || [];
  /* tracker methods like "setCustomDimension" should be called before "trackPageView" */
  _paq.push(['trackPageView']);
  _paq.push(['enableLinkTracking']);
  (function() {
    var u="https://statistik.stadtwerke-musterstadt.de/";
    _paq.push(['setTrackerUrl', u+'matomo.php']);
    _paq.push(['setSiteId', '1']);
    var d=document, g=d.createElement('script'), s=d.getElementsByTagName('script')[0];
    g.async=true; g.src=u+'matomo.js'; s.parentNode.insertBefore(g,s);
  })();
</script>
<noscript><p><img src="https://statistik.stadtwerke-musterstadt.de/matomo.php?idsite=1&amp;rec=1" \
style="border:0;" alt="" /></p></noscript>
<!-- End Matomo Code -->"""

# Meta Pixel base code from Events Manager, to be pasted into <head>.
META_PIXEL = """<!-- Meta Pixel Code -->
<script>
!function(f,b,e,v,n,t,s)
{if(f.fbq)return;n=f.fbq=function(){n.callMethod?
n.callMethod.apply(n,arguments):n.queue.push(arguments)};
if(!f._fbq)f._fbq=n;n.push=n;n.loaded=!0;n.version='2.0';
n.queue=[];t=b.createElement(e);t.async=!0;
t.src=v;s=b.getElementsByTagName(e)[0];
s.parentNode.insertBefore(t,s)}(window, document,'script',
'https://connect.facebook.net/en_US/fbevents.js');
fbq('init', '1234567890');
fbq('track', 'PageView');
</script>
<noscript><img height="1" width="1" style="display:none"
src="https://www.facebook.com/tr?id=1234567890&ev=PageView&noscript=1"
/></noscript>
<!-- End Meta Pixel Code -->"""

# econda Analytics, integration variant 3 ("Struktureller Aufbau"): the emos3 header buffers
# requests until the library is loaded, so it goes into <head>; the library (emos3.js, which
# econda hands out for self-hosting) and the page's request follow at the end of <body>.
ECONDA_HEAD = """<!-- econda Analytics -->
<script type="text/javascript">
  window.emos3 = {
    defaults : {
      siteid : 'stadtwerke-musterstadt.de'
    },
    stored : [],
    send : function(p){this.stored.push(p);}
  };
</script>"""

ECONDA_LOADER = """<script type="text/javascript" src="/js/emos3.js" async="async"></script>"""

# Google Ads: the Google tag (gtag.js) for the account, then the event snippet of the
# conversion action "Tarifseite MusterStrom Öko aufgerufen" (a page-load conversion).
GOOGLE_ADS = """<!-- Google tag (gtag.js) -->
<script async src="https://www.googletagmanager.com/gtag/js?id=AW-123456789"></script>
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag(){dataLayer.push(arguments);}
  gtag('js', new Date());

  gtag('config', 'AW-123456789');
</script>
<!-- Event snippet for Tarifseite MusterStrom Öko conversion page -->
<script>
  gtag('event', 'conversion', {
      'send_to': 'AW-123456789/AbC-D_efG-h12_34-567',
      'value': 1.0,
      'currency': 'EUR'
  });
</script>"""

# Marked by hand (the consentgate markup contract): a Matomo event that runs only with
# consent for Matomo, after the Matomo snippet in <head> has defined _paq.
MATOMO_EVENT = """<script type="text/plain" data-consentgate-service="matomo">
  _paq.push(['trackEvent', 'Tarif', 'Ansicht', 'MusterStrom Öko']);
</script>"""

# YouTube "Teilen > Einbetten" with "erweiterten Datenschutzmodus aktivieren"; the operator
# replaced the generic title "YouTube video player" with the video's name.
YOUTUBE_EMBED = """<iframe width="560" height="315" \
src="https://www.youtube-nocookie.com/embed/MusterVideo" \
title="So funktioniert unser Ökostrom" frameborder="0" \
allow="accelerometer; autoplay; clipboard-write; encrypted-media; gyroscope; \
picture-in-picture; web-share" referrerpolicy="strict-origin-when-cross-origin" \
allowfullscreen></iframe>"""

# Google Maps "Teilen > Karte einbetten"; the operator added the title.
GOOGLE_MAPS_EMBED = """<iframe
  src="https://www.google.com/maps/embed?pb=!1m18!1m12!1m3!1d2479.5123456789012!2d10.4515!3d51.1657!2m3!1f0!2f0!3f0!3m2!1i1024!2i768!4f13.1!3m3!1m2!1s0x0%3A0x0!2zNTHCsDA5JzU2LjUiTiAxMMKwMjcnMDUuNCJF!5e0!3m2!1sde!2sde!4v1718000000000!5m2!1sde!2sde"
  width="600" height="450" style="border:0;" allowfullscreen="" loading="lazy"
  referrerpolicy="no-referrer-when-downgrade"
  title="Lageplan: Kundencenter der Stadtwerke Musterstadt, Am Marktplatz 5"></iframe>"""


# --- Layout ------------------------------------------------------------------------------------
def _js_string(value: str) -> str:
    """Return ``value`` as a JavaScript string literal that cannot end a ``<script>`` element."""
    return (
        json.dumps(value, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def _nav_links(links: tuple[tuple[str, str], ...], current: str) -> str:
    items = []
    for href, label in links:
        marker = ' aria-current="page"' if href == current else ""
        items.append(f'<li><a href="{escape(href)}"{marker}>{escape(label)}</a></li>')
    return "\n".join(items)


def layout(
    *,
    path: str,
    title: str,
    description: str,
    main: str,
    econda_content: str,
    head_extra: str = "",
) -> str:
    """Return a complete HTML document: head with the site-wide tags, header, ``main``, footer.

    ``path`` marks the current navigation entry; ``econda_content`` names the page in econda.
    ``main`` and ``head_extra`` are trusted markup; everything else is escaped here.
    """
    econda_send = (
        '<script type="text/javascript">\n'
        f"  window.emos3.send({{ content: {_js_string(econda_content)} }});\n"
        "</script>"
    )
    return f"""<!DOCTYPE html>
<html lang="de">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} | {SITE_NAME}</title>
<meta name="description" content="{escape(description)}">
{GTM_HEAD}
{RESOURCE_HINTS}
<link rel="stylesheet" href="/static/site.css">
{ETRACKER}
{ECONDA_HEAD}
{MATOMO}
{META_PIXEL}
{head_extra}
</head>
<body>
{GTM_BODY}
<a class="skip-link" href="#inhalt">Zum Inhalt springen</a>
<header class="site-header">
<div class="wrap">
<a class="brand" href="/">Stadtwerke <span>Musterstadt</span></a>
<nav class="nav" aria-label="Hauptnavigation">
<ul>
{_nav_links(MAIN_NAV, path)}
</ul>
</nav>
</div>
</header>
<main id="inhalt" tabindex="-1">
<div class="wrap">
{main}
</div>
</main>
<footer class="site-footer">
<div class="wrap">
<p><strong>Stadtwerke Musterstadt GmbH</strong><br>
Am Marktplatz 5, 12345 Musterstadt<br>
Kundenservice <a href="tel:+49123456780">01234 5678-0</a>,
Störungsdienst rund um die Uhr <a href="tel:+491234567899">01234 5678-99</a></p>
<nav class="legal" aria-label="Rechtliches">
<ul>
{_nav_links(LEGAL_NAV, path)}
<li><button type="button" data-consentgate-open>Cookie-Einstellungen</button></li>
</ul>
</nav>
</div>
</footer>
{ECONDA_LOADER}
{econda_send}
</body>
</html>
"""


# --- Pages -------------------------------------------------------------------------------------
def home() -> str:
    """Return the home page."""
    main = f"""<section class="hero">
<h1>Energie und Wasser für Musterstadt</h1>
<p class="lead">Seit 1898 versorgen wir Musterstadt mit Strom, Erdgas, Wärme und Trinkwasser.
Alle Haushaltskunden beziehen bei uns heute Ökostrom aus Wasserkraft.</p>
<p class="actions"><a class="button" href="/strom">Zum Tarif MusterStrom Öko</a>
<a class="button secondary" href="/kundencenter">Zum Kundencenter</a></p>
</section>

<section aria-labelledby="schnell">
<h2 id="schnell">Schnell erledigt</h2>
<ul class="cards">
<li class="card"><h3><a href="/strom">Strom wechseln</a></h3>
<p>32,48 ct/kWh, 12 Monate Preisgarantie und ein Ansprechpartner vor Ort.</p></li>
<li class="card"><h3><a href="/kundencenter">Zählerstand melden</a></h3>
<p>Am einfachsten telefonisch oder per E-Mail; das Ablesedatum nennen Sie uns gleich mit.</p></li>
<li class="card"><h3><a href="/kundencenter#kontakt">Fragen zur Rechnung</a></h3>
<p>Unser Kundenservice ist montags bis freitags von 8 bis 18 Uhr für Sie da.</p></li>
</ul>
</section>

<section aria-labelledby="video">
<h2 id="video">So funktioniert unser Ökostrom</h2>
<p>Woher kommt der Strom, wenn Sie MusterStrom Öko beziehen, und was bedeutet der
Herkunftsnachweis auf Ihrer Rechnung? Unser Energieberater Jonas Weber erklärt es in drei
Minuten.</p>
<div class="embed">
{YOUTUBE_EMBED}
</div>
<p class="note">Das Video stellt YouTube bereit. Bevor es lädt, fragen wir Sie nach Ihrer
Einwilligung; mehr dazu in unserer <a href="/datenschutz#youtube">Datenschutzerklärung</a>.</p>
</section>

<section aria-labelledby="aktuelles">
<h2 id="aktuelles">Aktuelles</h2>
<article class="news">
<h3>Zwölf neue Ladepunkte am Bahnhof</h3>
<p class="meta"><time datetime="2025-03-12">12. März 2025</time></p>
<p>Auf dem Park-and-Ride-Platz am Bahnhof laden Elektroautos jetzt an sechs Doppelsäulen mit
bis zu 22 kW. Bezahlt wird per Karte oder mit der Ladekarte der Stadtwerke.</p>
</article>
<article class="news">
<h3>Trinkwasser: Jahresanalyse ohne Beanstandung</h3>
<p class="meta"><time datetime="2025-02-03">3. Februar 2025</time></p>
<p>Das Labor hat im vergangenen Jahr 1.460 Proben aus dem Wasserwerk und dem Leitungsnetz
untersucht. Alle Grenzwerte der Trinkwasserverordnung wurden eingehalten. Die Härte liegt
unverändert bei 9,8 °dH (mittel).</p>
</article>
</section>

<aside class="notice" aria-labelledby="stoerung">
<h2 id="stoerung">Störung bei Strom, Gas oder Wasser?</h2>
<p>Unser Bereitschaftsdienst ist rund um die Uhr erreichbar:
<a href="tel:+491234567899">01234 5678-99</a>. Wenn Sie Gas riechen: Fenster öffnen, keine
Schalter betätigen, Haus verlassen und von draußen anrufen.</p>
</aside>"""
    return layout(
        path="/",
        title="Startseite",
        description="Strom, Erdgas, Wärme und Trinkwasser für Musterstadt: Tarife, Service und "
        "Kontakt der Stadtwerke Musterstadt.",
        main=main,
        econda_content="Start",
    )


def strom() -> str:
    """Return the electricity tariff page, which also carries the Google Ads conversion."""
    main = (
        """<h1>Strom&shy;tarif MusterStrom Öko</h1>
<p class="lead">100 % Strom aus Wasserkraft, ein fairer Preis und Beratung hier in der
Stadt: MusterStrom Öko ist unser Tarif für Haushalte im Netzgebiet Musterstadt.</p>

<section aria-labelledby="preise">
<h2 id="preise">Preise</h2>
<table>
<caption>Preise für Haushaltskunden, inklusive 19 % Umsatzsteuer</caption>
<thead>
<tr><th scope="col">Preisbestandteil</th><th scope="col">Preis</th></tr>
</thead>
<tbody>
<tr><th scope="row">Arbeitspreis</th><td>32,48 ct/kWh</td></tr>
<tr><th scope="row">Grundpreis</th><td>13,90 € pro Monat</td></tr>
</tbody>
</table>
<p>Ein Beispiel: Bei 2.500 kWh im Jahr, dem Verbrauch eines Zwei-Personen-Haushalts, zahlen
Sie 978,80 € im Jahr. Ihr monatlicher Abschlag liegt damit bei rund 81,57 €.</p>
</section>

<section aria-labelledby="leistungen">
<h2 id="leistungen">Das ist drin</h2>
<ul class="checklist">
<li>Strom zu 100 % aus Wasserkraft, belegt durch Herkunftsnachweise im Register des
Umweltbundesamtes</li>
<li>12 Monate Preisgarantie ab Lieferbeginn, ausgenommen Änderungen von Steuern, Abgaben und
Umlagen</li>
<li>Mindestlaufzeit 12 Monate, danach monatlich kündbar</li>
<li>Für jede verkaufte Megawattstunde fließt 1 € in Solaranlagen auf Musterstädter
Schuldächern</li>
</ul>
</section>

<section aria-labelledby="wechsel">
<h2 id="wechsel">In drei Schritten wechseln</h2>
<ol>
<li>Zählernummer und aktuellen Zählerstand bereithalten; beides steht auf Ihrer letzten
Jahresabrechnung.</li>
<li>Auftrag erteilen: telefonisch, per E-Mail oder persönlich im Kundencenter.</li>
<li>Wir kündigen Ihren bisherigen Vertrag und melden uns mit dem Lieferbeginn.</li>
</ol>
<p><a class="button" href="/kundencenter#kontakt">Jetzt wechseln</a></p>
<p class="note">Es gelten unsere Allgemeinen Geschäftsbedingungen für MusterStrom Öko. Sie
können Ihren Auftrag innerhalb von 14 Tagen ohne Angabe von Gründen widerrufen.</p>
</section>
"""
        + MATOMO_EVENT
    )
    return layout(
        path="/strom",
        title="Stromtarif MusterStrom Öko",
        description="MusterStrom Öko: 100 % Ökostrom aus Wasserkraft für Haushalte in "
        "Musterstadt, 32,48 ct/kWh, 12 Monate Preisgarantie.",
        main=main,
        econda_content="Strom/MusterStrom Öko",
        head_extra=GOOGLE_ADS,
    )


def kundencenter() -> str:
    """Return the customer centre page with contact details and the office map."""
    main = f"""<h1>Kundencenter</h1>
<p class="lead">Umzug, Zählerstand, Abschlag oder Rechnung: Wir helfen Ihnen am Telefon, per
E-Mail oder persönlich am Marktplatz.</p>

<section aria-labelledby="anliegen">
<h2 id="anliegen">Häufige Anliegen</h2>
<dl class="faq">
<dt>Zählerstand melden</dt>
<dd>Nennen Sie uns Ihre Kundennummer, die Zählernummer, den Stand und das Ablesedatum. Ein
Foto des Zählers per E-Mail genügt ebenfalls.</dd>
<dt>Abschlag anpassen</dt>
<dd>Ändert sich Ihr Verbrauch, passen wir den monatlichen Abschlag an, damit die
Jahresabrechnung keine Überraschung bringt.</dd>
<dt>Umzug</dt>
<dd>Melden Sie sich bitte spätestens eine Woche vor dem Umzug mit dem Zählerstand am
Auszugstag und Ihrer neuen Anschrift.</dd>
<dt>Bankverbindung ändern</dt>
<dd>Für ein neues SEPA-Lastschriftmandat brauchen wir Ihre Unterschrift; das Formular senden
wir Ihnen gerne zu.</dd>
</dl>
</section>

<section id="kontakt" aria-labelledby="kontakt-titel">
<h2 id="kontakt-titel">Kontakt</h2>
<div class="columns">
<div>
<h3>Telefon und E-Mail</h3>
<ul class="plain">
<li>Kundenservice: <a href="tel:+49123456780">01234 5678-0</a><br>
Montag bis Freitag, 8 bis 18 Uhr</li>
<li>Störungsdienst, rund um die Uhr: <a href="tel:+491234567899">01234 5678-99</a></li>
<li>E-Mail: <a href="mailto:kundencenter@stadtwerke-musterstadt.de">\
kundencenter@stadtwerke-musterstadt.de</a></li>
</ul>
<p>Halten Sie bitte Ihre Kundennummer bereit; Sie finden sie oben rechts auf jeder
Rechnung.</p>
</div>
<div>
<h3>Öffnungszeiten am Marktplatz</h3>
<table>
<caption>Persönliche Beratung ohne Termin</caption>
<tbody>
<tr><th scope="row">Montag bis Mittwoch</th><td>8 bis 16 Uhr</td></tr>
<tr><th scope="row">Donnerstag</th><td>8 bis 18 Uhr</td></tr>
<tr><th scope="row">Freitag</th><td>8 bis 13 Uhr</td></tr>
</tbody>
</table>
</div>
</div>
</section>

<section aria-labelledby="anfahrt">
<h2 id="anfahrt">Anfahrt</h2>
<address>Stadtwerke Musterstadt GmbH<br>
Kundencenter<br>
Am Marktplatz 5<br>
12345 Musterstadt</address>
<p>Die Buslinien 3 und 7 halten direkt vor dem Haus (Haltestelle „Marktplatz“). Parkplätze
gibt es im Parkhaus am Rathaus; die erste Stunde ist für Kundinnen und Kunden kostenlos. Den
stufenlosen Eingang finden Sie in der Kirchgasse.</p>
<div class="embed map">
{GOOGLE_MAPS_EMBED}
</div>
</section>"""
    return layout(
        path="/kundencenter",
        title="Kundencenter",
        description="Kontakt, Öffnungszeiten und Anfahrt des Kundencenters der Stadtwerke "
        "Musterstadt am Marktplatz.",
        main=main,
        econda_content="Service/Kundencenter",
    )


def _youtube(video_id: str, title: str) -> str:
    """Return a YouTube embed in privacy-enhanced mode, like ``YOUTUBE_EMBED``."""
    return YOUTUBE_EMBED.replace("MusterVideo", video_id).replace(
        "So funktioniert unser Ökostrom", escape(title)
    )


def ueber_uns() -> str:
    """Return the about-us page."""
    main = f"""<h1>Über uns</h1>
<p class="lead">Die Stadtwerke Musterstadt GmbH gehört vollständig der Stadt Musterstadt.
Was wir verdienen, bleibt in der Region: als Investition in Netze, Klimaschutz und den
Busverkehr.</p>

<section aria-labelledby="zahlen">
<h2 id="zahlen">Auf einen Blick</h2>
<dl class="facts">
<div><dt>Mitarbeiterinnen und Mitarbeiter</dt><dd>243, davon 21 Auszubildende</dd></div>
<div><dt>Stromkunden</dt><dd>38.500</dd></div>
<div><dt>Stromnetz</dt><dd>412 km</dd></div>
<div><dt>Trinkwasser pro Jahr</dt><dd>6,2 Millionen m³</dd></div>
</dl>
</section>

<section aria-labelledby="geschichte">
<h2 id="geschichte">Unsere Geschichte</h2>
<ol class="timeline">
<li><strong>1898</strong> Das städtische Gaswerk nimmt den Betrieb auf und beleuchtet die
Hauptstraße.</li>
<li><strong>1911</strong> Das Elektrizitätswerk am Mühlbach liefert den ersten Strom.</li>
<li><strong>1965</strong> Das Wasserwerk an der Talsperre versorgt die ganze Stadt.</li>
<li><strong>1999</strong> Gas-, Elektrizitäts- und Wasserwerk werden zur Stadtwerke
Musterstadt GmbH.</li>
<li><strong>2021</strong> Alle Haushaltskunden erhalten Ökostrom aus Wasserkraft.</li>
</ol>
</section>

<section aria-labelledby="nachhaltigkeit">
<h2 id="nachhaltigkeit">Nachhaltigkeit</h2>
<p>Bis 2035 wollen wir die Fernwärme vollständig aus erneuerbaren Quellen und Abwärme
erzeugen. Dafür bauen wir eine Großwärmepumpe am Klärwerk und eine Solarthermieanlage auf dem
ehemaligen Deponiegelände. Über den Fortschritt berichten wir jedes Jahr in unserem
Nachhaltigkeitsbericht.</p>
<div class="videos">
<figure>
{_youtube("Waermepumpe", "Die Großwärmepumpe am Klärwerk")}
<figcaption>Die Großwärmepumpe am Klärwerk (3:12)</figcaption>
</figure>
<figure>
{_youtube("Wasserwerk", "Unser Wasserwerk an der Talsperre")}
<figcaption>Unser Wasserwerk an der Talsperre (4:05)</figcaption>
</figure>
</div>
</section>

<section aria-labelledby="karriere">
<h2 id="karriere">Arbeiten bei den Stadtwerken</h2>
<p>Wir bilden Elektronikerinnen und Elektroniker, Anlagenmechaniker, Industriekaufleute und
Fachkräfte für Wasserversorgungstechnik aus. Initiativbewerbungen senden Sie bitte an
<a href="mailto:bewerbung@stadtwerke-musterstadt.de">bewerbung@stadtwerke-musterstadt.de</a>.
</p>
</section>"""
    return layout(
        path="/ueber-uns",
        title="Über uns",
        description="Wer wir sind: Geschichte, Zahlen und Ziele der Stadtwerke Musterstadt.",
        main=main,
        econda_content="Unternehmen/Über uns",
    )


def consent_status(state: ConsentState | None) -> str:
    """Return the section that shows, per service, whether ``state`` allows it."""
    if state is None:
        return (
            '<p class="status-unavailable"><strong>Einwilligungsstatus nicht verfügbar.</strong> '
            "Bitte laden Sie die Seite später erneut.</p>"
        )
    if state.decided:
        consent_id = state.consent_id or "unbekannt"
        intro = (
            "<p>Sie haben eine Auswahl getroffen. Ihre Einwilligungs-ID lautet "
            f"<code>{escape(consent_id)}</code>; nennen Sie sie uns, wenn Sie Auskunft über "
            "Ihre Einwilligung wünschen.</p>"
        )
    else:
        intro = (
            "<p>Sie haben noch keine Auswahl getroffen. Bis dahin laden wir keinen der "
            "folgenden Dienste.</p>"
        )
    rows = []
    for service_id, name in SERVICES:
        allowed = state.allows(service_id)
        css, label = ("allowed", "erlaubt") if allowed else ("denied", "nicht erlaubt")
        rows.append(
            f'<tr data-service="{escape(service_id)}"><th scope="row">{escape(name)}</th>'
            f'<td class="{css}">{label}</td></tr>'
        )
    body = "\n".join(rows)
    return f"""{intro}
<table class="consent-status">
<caption>Ihr Stand beim Aufruf dieser Seite</caption>
<thead>
<tr><th scope="col">Dienst</th><th scope="col">Status</th></tr>
</thead>
<tbody>
{body}
</tbody>
</table>"""


# The generated declaration brings markup, not style: the site lays out its fact lists
# (provider, seat, category, purposes, legal basis) as a two-column grid.
DECLARATION_STYLE = """<style>
.consentgate-declaration dl { display: grid; grid-template-columns: max-content 1fr;
  gap: .25rem 1.25rem; margin: 1rem 0; padding: .75rem 1rem; border-left: 4px solid var(--green);
  background: var(--paper); }
.consentgate-declaration dl div { display: contents; }
.consentgate-declaration dt { font-weight: 600; }
.consentgate-declaration dd { margin: 0; }
.consentgate-declaration-footer { color: var(--muted); font-size: .95rem; }
@media (max-width: 40rem) { .consentgate-declaration dl { grid-template-columns: 1fr; } }
</style>"""


def datenschutz(state: ConsentState | None, declaration: Declaration) -> str:
    """Return the privacy policy, including the visitor's current consent per service.

    ``declaration`` is consentgate's generated section on cookies, consent, each service and
    the server logs (German, HTML); the page adds what only the operator can say.
    """
    main = f"""<h1>Datenschutzerklärung</h1>
<p class="lead">Hier erfahren Sie, welche Daten wir verarbeiten, wenn Sie unsere Website
besuchen, wozu wir das tun und welche Rechte Sie haben.</p>
<p class="meta">Version 3.0, gültig seit März 2025</p>

<nav class="toc" aria-label="Inhalt dieser Seite">
<ol>
<li><a href="#verantwortlicher">Verantwortlicher</a></li>
<li><a href="#einwilligung">Ihr aktueller Einwilligungsstatus</a></li>
<li><a href="#consentgate-declaration">Cookies, Einwilligungen und Server-Protokolle</a></li>
<li><a href="#empfaenger">Empfänger</a></li>
<li><a href="#rechte">Ihre Rechte</a></li>
<li><a href="#aenderungen">Änderungen</a></li>
</ol>
</nav>

<section aria-labelledby="verantwortlicher">
<h2 id="verantwortlicher">Verantwortlicher</h2>
<address>Stadtwerke Musterstadt GmbH<br>
Am Marktplatz 5<br>
12345 Musterstadt<br>
Telefon <a href="tel:+49123456780">01234 5678-0</a><br>
E-Mail <a href="mailto:info@stadtwerke-musterstadt.de">info@stadtwerke-musterstadt.de</a>
</address>
<p>Unsere Datenschutzbeauftragte erreichen Sie unter
<a href="mailto:datenschutz@stadtwerke-musterstadt.de">datenschutz@stadtwerke-musterstadt.de</a>
oder per Post an die obige Anschrift mit dem Zusatz „Datenschutzbeauftragte, persönlich“.</p>
<p>Diese Erklärung gilt für unsere Website. Zu Ihren Energie- und Wasserverträgen erhalten
Sie eigene Datenschutzinformationen mit den Vertragsunterlagen.</p>
</section>

<section aria-labelledby="einwilligung">
<h2 id="einwilligung">Ihr aktueller Einwilligungsstatus</h2>
<p>Diese Übersicht erstellt unser Server beim Aufruf der Seite aus dem Einwilligungs-Cookie
Ihres Browsers.</p>
{consent_status(state)}
<p>Sie können Ihre Auswahl jederzeit ändern:
<button type="button" class="button" data-consentgate-open>Cookie-Einstellungen</button></p>
</section>

{declaration.text}
<section aria-labelledby="empfaenger">
<h2 id="empfaenger">Empfänger</h2>
<p>Unsere Website läuft bei einem Hosting-Dienstleister mit Rechenzentrum in Deutschland, der
in unserem Auftrag arbeitet (Art. 28 DSGVO). Welche Anbieter Daten erhalten, wenn Sie einen
Dienst erlauben, und in welche Länder sie übermittelt werden können, steht oben bei jedem
Dienst. Für Unternehmen, die nach dem EU-US Data Privacy Framework zertifiziert sind, gilt
seit dem 10. Juli 2023 ein Angemessenheitsbeschluss der Europäischen Kommission
(Art. 45 DSGVO); Google LLC und Meta Platforms, Inc. sind zertifiziert.</p>
</section>

<section aria-labelledby="rechte">
<h2 id="rechte">Ihre Rechte</h2>
<ul>
<li><strong>Auskunft (Art. 15 DSGVO):</strong> Sie können erfahren, ob und welche Daten wir
über Sie verarbeiten. Für Ihre Einwilligungen genügt uns die Einwilligungs-ID, die oben unter
„Ihr aktueller Einwilligungsstatus“ steht.</li>
<li><strong>Berichtigung (Art. 16 DSGVO):</strong> Falsche Daten korrigieren wir.</li>
<li><strong>Löschung (Art. 17 DSGVO):</strong> Sie können verlangen, dass wir Ihre Daten
löschen, soweit uns kein Gesetz die Aufbewahrung vorschreibt.</li>
<li><strong>Einschränkung (Art. 18 DSGVO) und Datenübertragbarkeit (Art. 20
DSGVO)</strong> unter den dort genannten Voraussetzungen.</li>
<li><strong>Widerruf (Art. 7 Abs. 3 DSGVO):</strong> Eine Einwilligung können Sie jederzeit
mit Wirkung für die Zukunft widerrufen, so einfach, wie Sie sie erteilt haben: über
„Cookie-Einstellungen“ am Ende jeder Seite. Was wir bis zum Widerruf verarbeitet haben, bleibt
rechtmäßig.</li>
<li><strong>Beschwerde (Art. 77 DSGVO)</strong> bei einer Datenschutz-Aufsichtsbehörde, etwa
der Ihres Bundeslandes.</li>
</ul>
<div class="notice">
<h3>Widerspruchsrecht nach Art. 21 DSGVO</h3>
<p>Soweit wir Daten auf Grundlage von Art. 6 Abs. 1 lit. f DSGVO verarbeiten, etwa in den
Server-Protokollen, können Sie dem jederzeit aus Gründen widersprechen, die sich aus Ihrer
besonderen Situation ergeben. Wir verarbeiten die Daten dann nicht mehr, es sei denn, wir
weisen zwingende schutzwürdige Gründe nach, die Ihre Interessen überwiegen, oder wir brauchen
sie, um Rechtsansprüche geltend zu machen, auszuüben oder zu verteidigen. Einer Verarbeitung
für Direktwerbung können Sie ohne Begründung widersprechen.</p>
</div>
<p>Schreiben Sie uns dazu an
<a href="mailto:datenschutz@stadtwerke-musterstadt.de">datenschutz@stadtwerke-musterstadt.de</a>
oder per Post. Wir antworten innerhalb eines Monats (Art. 12 Abs. 3 DSGVO).</p>
</section>

<section aria-labelledby="aenderungen">
<h2 id="aenderungen">Änderungen dieser Erklärung</h2>
<p>Setzen wir neue Dienste ein oder nutzen wir bestehende anders, passen wir diese Erklärung
an und erhöhen ihre Versionsnummer. Ändert sich dabei, wofür wir Ihre Einwilligung brauchen,
fragen wir Sie erneut.</p>
</section>"""
    return layout(
        path="/datenschutz",
        title="Datenschutzerklärung",
        description="Wie die Stadtwerke Musterstadt auf dieser Website mit Ihren Daten umgehen, "
        "und Ihr aktueller Einwilligungsstatus.",
        main=main,
        econda_content="Rechtliches/Datenschutz",
        head_extra=DECLARATION_STYLE,
    )


def impressum() -> str:
    """Return the imprint."""
    main = """<h1>Impressum</h1>

<section aria-labelledby="anbieter">
<h2 id="anbieter">Angaben nach § 5 DDG</h2>
<address>Stadtwerke Musterstadt GmbH<br>
Am Marktplatz 5<br>
12345 Musterstadt</address>
<p>Telefon <a href="tel:+49123456780">01234 5678-0</a><br>
E-Mail <a href="mailto:info@stadtwerke-musterstadt.de">info@stadtwerke-musterstadt.de</a></p>
<dl class="facts">
<div><dt>Geschäftsführung</dt><dd>Dr. Petra Beispiel</dd></div>
<div><dt>Vorsitzender des Aufsichtsrats</dt><dd>Oberbürgermeister Max Mustermann</dd></div>
<div><dt>Registergericht</dt><dd>Amtsgericht Musterstadt, HRB 4711</dd></div>
<div><dt>Umsatzsteuer-Identifikationsnummer nach § 27a UStG</dt><dd>DE123456789</dd></div>
</dl>
</section>

<section aria-labelledby="redaktion">
<h2 id="redaktion">Verantwortlich für den Inhalt nach § 18 Abs. 2 MStV</h2>
<p>Erika Musterfrau, Leiterin Unternehmenskommunikation, Anschrift wie oben</p>
</section>

<section aria-labelledby="schlichtung">
<h2 id="schlichtung">Verbraucherschlichtung</h2>
<p>Bei Fragen oder Beschwerden zu Ihrem Energievertrag wenden Sie sich bitte zuerst an unseren
Kundenservice. Finden wir keine Lösung, können Sie die Schlichtungsstelle Energie e.&nbsp;V.
anrufen; wir sind zur Teilnahme am Schlichtungsverfahren nach § 111b EnWG verpflichtet.</p>
<address>Schlichtungsstelle Energie e.&nbsp;V.<br>
Friedrichstraße 133<br>
10117 Berlin<br>
<a href="https://www.schlichtungsstelle-energie.de">www.schlichtungsstelle-energie.de</a></address>
<p>Allgemeine Informationen zu Ihren Rechten als Energiekunde gibt der Verbraucherservice der
Bundesnetzagentur, Postfach 8001, 53105 Bonn.</p>
</section>

<section aria-labelledby="haftung">
<h2 id="haftung">Hinweis zu Links</h2>
<p>Für die Inhalte verlinkter Websites anderer Anbieter sind deren Betreiber verantwortlich.
Wir prüfen Links beim Setzen; wird uns ein Rechtsverstoß bekannt, entfernen wir den Link.</p>
</section>"""
    return layout(
        path="/impressum",
        title="Impressum",
        description="Impressum der Stadtwerke Musterstadt GmbH.",
        main=main,
        econda_content="Rechtliches/Impressum",
    )


def not_found() -> str:
    """Return the page shown for unknown paths."""
    main = """<h1>Seite nicht gefunden</h1>
<p class="lead">Diese Seite gibt es nicht oder nicht mehr. Vielleicht hilft Ihnen einer
dieser Wege weiter:</p>
<ul>
<li><a href="/">Zur Startseite</a></li>
<li><a href="/strom">Zum Stromtarif MusterStrom Öko</a></li>
<li><a href="/kundencenter#kontakt">Zum Kontakt</a></li>
</ul>"""
    return layout(
        path="",
        title="Seite nicht gefunden",
        description="Die angeforderte Seite wurde nicht gefunden.",
        main=main,
        econda_content="Fehler/404",
    )
