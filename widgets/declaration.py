"""The cookie declaration and privacy-policy section, generated from the settings.

``render_declaration`` turns the settings into a document of headings, paragraphs, lists,
fact lists and cookie tables (the texts of ``config/declaration.toml``, overridable under
``[declaration.texts.<language>]``, framing the facts of the configured services), then
writes it as an HTML fragment or as Markdown. The fingerprint is the SHA-256 of that
document as canonical JSON, not of the markup: the HTML and the Markdown of one language
share it, and any change of a text or a fact changes it. The banner catalogue carries it,
so every consent record pins the declaration the visitor could read.
"""

from __future__ import annotations

import functools
import hashlib
import html
import ipaddress
import json
import re
import string
import tomllib
from dataclasses import dataclass, fields, is_dataclass
from importlib import resources
from typing import Any, Literal
from urllib.parse import urlsplit

from consentgate.config import CATEGORIES, LANGUAGES, Category, Language, Service, Settings

#: The version of the document structure the fingerprint covers.
FORMAT = 1
#: Member states of the EU and the other EEA states (Iceland, Liechtenstein, Norway).
# fmt: off
EU_EEA = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "IS", "LI", "NO",
})
# fmt: on
#: The model's default legal basis: shown in the language's own wording (``basis_consent``).
DEFAULT_LEGAL_BASIS = Service.model_fields["legal_basis"].default
#: An address whose masked form illustrates the ``[ip]`` prefixes (RFC 5737 documentation range).
IPV4_EXAMPLE = "203.0.113.77"
#: Hosts of Matomo Cloud (InnoCraft); any other ``url`` is the operator's own installation.
MATOMO_CLOUD_HOSTS = (".matomo.cloud", ".innocraft.cloud")
#: The anchors of the sections that are not services (a service id never contains "-").
ANCHOR_TOP = "consentgate-declaration"
ANCHOR_CONSENT = "consentgate-consent"
ANCHOR_LOG = "consentgate-access-log"


@dataclass(frozen=True, slots=True)
class Declaration:
    """The declaration in one language and format.

    ``fingerprint`` (SHA-256, 64 hex characters) covers the language, the revision and every
    text and fact shown, not the markup: ``html`` and ``md`` of the same content share it.
    """

    language: Language
    format: Literal["html", "md"]
    text: str
    revision: int
    fingerprint: str


# --- The document: inline pieces and blocks ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Code:
    """A name shown as code (a cookie)."""

    text: str


@dataclass(frozen=True, slots=True)
class Strong:
    """Emphasised text (a category's name)."""

    text: str


@dataclass(frozen=True, slots=True)
class Link:
    """A link; only http(s) and site-relative URLs become links, others are printed as text."""

    text: str
    url: str


@dataclass(frozen=True, slots=True)
class Button:
    """The control that opens the banner's settings (``[data-consentgate-open]``)."""

    text: str


Inline = str | Code | Strong | Link | Button
Run = tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Heading:
    level: Literal[2, 3]
    text: str
    anchor: str


@dataclass(frozen=True, slots=True)
class Paragraph:
    run: Run


@dataclass(frozen=True, slots=True)
class Items:
    items: tuple[Run, ...]


@dataclass(frozen=True, slots=True)
class Facts:
    """Label and value pairs (provider, seat, category, purposes, legal basis)."""

    rows: tuple[tuple[str, Run], ...]


@dataclass(frozen=True, slots=True)
class Table:
    caption: str
    head: tuple[str, ...]
    rows: tuple[tuple[Run, ...], ...]


Block = Heading | Paragraph | Items | Facts | Table


# --- Rendering the document from the settings -----------------------------------------------


def render_declaration(
    settings: Settings, language: Language, fmt: Literal["html", "md"] = "html"
) -> Declaration:
    """Return the cookie declaration of ``settings`` in ``language`` as HTML or Markdown.

    The HTML is one ``<section class="consentgate-declaration">`` element, every value in it
    escaped; the Markdown escapes what Markdown would read as markup in any text.
    """
    if fmt not in ("html", "md"):
        raise ValueError(f"format {fmt!r} is not one of 'html', 'md'")
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r} is not one of {LANGUAGES!r}")
    writer = _Writer(settings, language)
    blocks = writer.document()
    footer = settings.declaration.text(language, "footer")
    canonical = json.dumps(
        {
            "format": FORMAT,
            "language": language,
            "revision": settings.revision,
            "blocks": [_plain(block) for block in blocks],
            "footer": footer,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
    footer_run = writer.fill("footer", fingerprint=fingerprint, fingerprint_short=fingerprint[:8])
    if fmt == "html":
        text = _html(blocks, footer_run, language, settings.revision, fingerprint)
    else:
        text = _markdown(blocks, footer_run)
    return Declaration(language, fmt, text, settings.revision, fingerprint)


class _Writer:
    """Builds the blocks of one language's declaration."""

    def __init__(self, settings: Settings, language: Language) -> None:
        self.settings = settings
        self.language = language
        self.banner = settings.texts.get(language) or settings.texts[settings.default_language]
        ip = settings.ip
        masked = ipaddress.ip_network(f"{IPV4_EXAMPLE}/{ip.ipv4_prefix}", strict=False)
        self.context: dict[str, Inline] = {
            "cookie_name": Code(settings.cookie.name),
            "cookie_days": self.number(settings.cookie.lifetime_days),
            "ipv4_prefix": str(ip.ipv4_prefix),
            "ipv6_prefix": str(ip.ipv6_prefix),
            "ipv4_example": IPV4_EXAMPLE,
            "ipv4_masked": str(masked.network_address),
            "revision": str(settings.revision),
        }
        self.context["settings_button"] = Button(_flat(self.fill("settings_button")))

    # -- texts

    def fill(self, key: str, **values: Inline) -> Run:
        """Return the text ``key`` with its placeholders filled in (global ones and ``values``)."""
        template = self.settings.declaration.text(self.language, key)
        context = {**self.context, **values}
        run: list[Inline] = []
        # Literal braces come back single from the parser; placeholders were checked when the
        # settings were loaded, so a missing value is a bug here, not the operator's.
        for literal, name, _spec, _conversion in _parse(template):
            if literal:
                run.append(literal)
            if name is not None:
                run.append(context[name])
        return _merge(run)

    def text(self, key: str, **values: Inline) -> str:
        """Return the text ``key`` filled in, as plain text (headings, labels, captions)."""
        return _flat(self.fill(key, **values))

    def number(self, value: float) -> str:
        """Return ``value`` with the language's separators: 1.095 (de), 1,095 (en)."""
        text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
        if self.language == "de":
            text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return text

    def join(self, names: list[str]) -> str:
        """Return "A, B und C" (or "A, B and C")."""
        if len(names) <= 1:
            return "".join(names)
        return ", ".join(names[:-1]) + f" {self.text('and')} " + names[-1]

    def lifetime(self, days: float | None) -> str:
        """Return a cookie lifetime: days, or hours and minutes below a day, or the session."""
        if days is None:
            return self.text("lifetime_session")
        if days >= 1:
            amount = round(days, 1)
            unit = "day" if amount == 1 else "days"
        elif days * 24 >= 1:
            amount = round(days * 24)
            unit = "hour" if amount == 1 else "hours"
        else:
            amount = round(days * 24 * 60)
            unit = "minute" if amount == 1 else "minutes"
        return self.text(f"lifetime_{unit}", n=self.number(amount))

    def country(self, code: str) -> str:
        """Return the name of the country ``code`` in this language (the code if unknown)."""
        return _countries()[self.language].get(code, code)

    def category(self, category: Category) -> str:
        """Return the banner's name of ``category`` ("Externe Medien")."""
        return self.banner.categories[category].name

    # -- the document

    def document(self) -> list[Block]:
        blocks = self.introduction()
        blocks += self.consent()
        for service in self.settings.services.values():
            blocks += self.service(service)
        blocks += self.access_log()
        return blocks

    def introduction(self) -> list[Block]:
        settings = self.settings
        blocks: list[Block] = [Heading(2, self.text("title"), ANCHOR_TOP)]
        controller = settings.declaration.controller
        if controller is not None:
            lines = [line.strip() for line in controller.splitlines() if line.strip()]
            blocks.append(Paragraph(self.fill("controller", controller=", ".join(lines))))
        blocks.append(Paragraph(self.fill("intro")))
        items: list[Run] = []
        for category in CATEGORIES:
            names = [s.name for s in settings.services.values() if s.category == category]
            if not names and category != "necessary":
                continue
            label = self.category(category)
            if names:
                label += f" ({', '.join(names)})"
            description = self.banner.categories[category].description
            items.append((Strong(label), ": " + description))
        blocks.append(Items(tuple(items)))
        opt_in = self.fill("opt_in")
        if settings.blocking.enabled:
            opt_in = _merge([*opt_in, " ", *self.fill("opt_in_blocking")])
        blocks.append(Paragraph(opt_in))
        blocks.append(Paragraph(self.fill("withdraw")))
        signals: list[Inline] = []
        dnt = [s.name for s in self.optional() if s.honors_dnt and settings.signals.dnt]
        if dnt:
            signals += self.fill("signal_dnt", services=self.join(dnt))
        gpc = [
            self.category(c)
            for c in CATEGORIES
            if c in settings.signals.gpc and any(s.category == c for s in self.optional())
        ]
        if gpc:
            signals += [" "] if signals else []
            signals += self.fill("signal_gpc", categories=self.join(gpc))
        if signals:
            blocks.append(Paragraph(_merge(signals)))
        return blocks

    def optional(self) -> list[Service]:
        return [s for s in self.settings.services.values() if s.category != "necessary"]

    def consent(self) -> list[Block]:
        settings = self.settings
        retention = self.number(settings.ledger.retention_days)
        history = Link(self.text("history_link"), settings.prefix + "/history")
        return [
            Heading(3, self.text("consent_heading"), ANCHOR_CONSENT),
            Paragraph(
                _merge([*self.fill("consent_cookie"), " ", *self.fill("consent_cookie_basis")])
            ),
            Table(
                self.text("consent_cookies_caption"),
                self.columns(),
                (
                    (
                        (Code(settings.cookie.name),),
                        self.fill("consent_cookie_purpose"),
                        (self.lifetime(settings.cookie.lifetime_days),),
                        self.fill("party_first"),
                    ),
                ),
            ),
            Paragraph(self.fill("consent_record")),
            Items(
                (
                    self.fill("record_time"),
                    self.fill("record_choice"),
                    self.fill("record_banner"),
                    self.fill("record_page"),
                    self.address_item(),
                    self.fill("record_browser"),
                )
            ),
            Paragraph(self.fill("consent_record_kept", retention_days=retention)),
            Paragraph(self.fill("consent_record_erasure", history=history)),
        ]

    def columns(self) -> tuple[str, ...]:
        return tuple(self.text(f"column_{c}") for c in ("name", "purpose", "lifetime", "party"))

    def full_address(self) -> bool:
        """Whether ``[ip]`` keeps whole addresses (nothing is masked)."""
        return self.settings.ip.ipv4_prefix == 32 and self.settings.ip.ipv6_prefix == 128

    def address_item(self) -> Run:
        return self.fill("ip_full" if self.full_address() else "ip_masked")

    def service(self, service: Service) -> list[Block]:
        settings = self.settings
        language = self.language
        necessary = service.category == "necessary"
        provider = service.provider
        if necessary:
            basis = self.text("basis_necessary")
        elif service.legal_basis == DEFAULT_LEGAL_BASIS:
            basis = self.text("basis_consent")
        else:
            basis = service.legal_basis
        own: dict[str, Inline] = {
            "service": service.name,
            "provider": provider.name,
            "address": provider.address,
            "country": self.country(provider.country),
            "category": self.category(service.category),
            "legal_basis": basis,
        }

        def fill(key: str, **values: Inline) -> Run:
            return self.fill(key, **own, **values)

        facts: list[tuple[str, Run]] = [
            (self.text("label_provider"), (f"{provider.name}, {provider.address}",)),
            (self.text("label_country"), (self.country(provider.country),)),
            (self.text("label_category"), (self.category(service.category),)),
        ]
        if service.purposes:
            purposes = "; ".join(p.get(language) for p in service.purposes)
            facts.append((self.text("label_purposes"), (purposes,)))
        facts.append((self.text("label_legal_basis"), (basis,)))
        blocks: list[Block] = [
            Heading(3, _flat(fill("service_heading")), service.id),
            Paragraph((service.description.get(language),)),
            Facts(tuple(facts)),
            Paragraph(fill("service_necessary" if necessary else "service_optional")),
        ]
        blocking = settings.blocking
        if (
            service.category == "external_media"
            and (service.placeholder is not None or service.load_label is not None)
            and blocking.enabled
            and blocking.placeholders
        ):
            load = service.load_label.get(language) if service.load_label else self.banner.load_once
            blocks.append(
                Paragraph(
                    fill("service_embed", load_label=load, allow_always=self.banner.allow_always)
                )
            )
        if service.id == "youtube":
            blocks.append(Paragraph(fill("service_youtube")))
        if service.id == "google_tag_manager":
            run = fill("service_gtm")
            if settings.csp.mode == "enforce":
                run = _merge([*run, " ", *fill("service_gtm_csp")])
            blocks.append(Paragraph(run))
        if service.id == "matomo" and service.url is not None:
            host = urlsplit(service.url).hostname or service.url
            cloud = host.endswith(MATOMO_CLOUD_HOSTS)
            blocks.append(
                Paragraph(fill("service_matomo_cloud" if cloud else "service_matomo", host=host))
            )
        if service.data_transfer_countries:
            countries = self.join([self.country(c) for c in service.data_transfer_countries])
            key = "service_transfer_necessary" if necessary else "service_transfer"
            blocks.append(Paragraph(fill(key, countries=countries)))
        elif provider.country in EU_EEA:
            blocks.append(Paragraph(fill("service_no_transfer")))
        signals: list[Inline] = []
        if service.honors_dnt and settings.signals.dnt and not necessary:
            signals += fill("service_dnt")
        if service.category in settings.signals.gpc:
            signals += [" "] if signals else []
            signals += fill("service_gpc")
        if signals:
            blocks.append(Paragraph(_merge(signals)))
        if service.cookies:
            rows = tuple(
                (
                    (Code(cookie.name),),
                    (cookie.purpose.get(language) if cookie.purpose else "–",),
                    (self.lifetime(cookie.lifetime_days),),
                    fill("service_party_third") if cookie.party == "third" else fill("party_first"),
                )
                for cookie in service.cookies
            )
            blocks.append(Table(_flat(fill("service_cookies_caption")), self.columns(), rows))
        else:
            blocks.append(Paragraph(fill("service_no_cookies")))
        links: list[Inline] = []
        if service.opt_out_url is not None:
            links += fill("service_opt_out", opt_out=Link(service.opt_out_url, service.opt_out_url))
            links.append(" ")
        privacy = Link(service.privacy_policy_url, service.privacy_policy_url)
        links += fill("service_privacy", privacy=privacy)
        blocks.append(Paragraph(_merge(links)))
        return blocks

    def access_log(self) -> list[Block]:
        log = self.settings.access_log
        if log.directory is None:
            # consentgate writes no log; all it does with the address is mask it for the app.
            if self.full_address():
                return []
            return [
                Heading(3, self.text("address_heading"), ANCHOR_LOG),
                Paragraph(self.fill("address_only")),
            ]
        suffix = ".jsonl" if log.format == "jsonl" else ".log"
        request = "log_request_query" if log.keep_query else "log_request"
        blocks: list[Block] = [
            Heading(3, self.text("log_heading"), ANCHOR_LOG),
            Paragraph(self.fill("log_intro")),
            Items(
                (
                    self.address_item(),
                    self.fill("log_time"),
                    self.fill(request),
                    self.fill("log_status"),
                    self.fill("log_referrer"),
                    self.fill("log_browser"),
                )
            ),
            Paragraph(
                _merge(
                    [
                        *self.fill(
                            f"log_format_{log.format}", file=Code(f"access-YYYY-MM-DD{suffix}")
                        ),
                        " ",
                        *self.fill("log_retention", retention_days=self.number(log.retention_days)),
                    ]
                )
            ),
        ]
        purpose = self.fill("log_purpose")
        if not self.full_address():
            purpose = _merge([*purpose, " ", *self.fill("log_app")])
        blocks.append(Paragraph(purpose))
        return blocks


@functools.cache
def _countries() -> dict[str, dict[str, str]]:
    text = resources.files(__package__).joinpath("countries.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _parse(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    return list(string.Formatter().parse(template))


def _merge(run: list[Inline] | Run) -> Run:
    """Join neighbouring strings of ``run`` and drop empty ones."""
    merged: list[Inline] = []
    for piece in run:
        if isinstance(piece, str):
            if not piece:
                continue
            if merged and isinstance(merged[-1], str):
                merged[-1] += piece
                continue
        merged.append(piece)
    return tuple(merged)


def _flat(run: Run) -> str:
    """Return ``run`` as plain text."""
    return "".join(piece if isinstance(piece, str) else piece.text for piece in run)


def _plain(value: Any) -> Any:
    """Return a document node as JSON data, each node tagged with its kind."""
    if isinstance(value, str | int):
        return value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if is_dataclass(value):
        node = {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
        node["kind"] = type(value).__name__
        return node
    raise TypeError(f"{value!r} is not a document node")


def safe_href(url: str) -> str | None:
    """Return ``url`` if a browser may follow it from our markup (http, https, site path)."""
    if any(ord(c) <= 0x20 or c in '\\"<>`' for c in url):
        return None
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return url
    if not parts.scheme and not url.startswith("//"):
        return url
    return None


# --- HTML ---------------------------------------------------------------------------------------


def _html(blocks: list[Block], footer: Run, language: str, revision: int, fingerprint: str) -> str:
    esc = html.escape
    out = [
        f'<section class="consentgate-declaration" lang="{esc(language)}" '
        f'data-consentgate-declaration data-revision="{revision}" '
        f'data-fingerprint="{esc(fingerprint)}">'
    ]
    for block in blocks:
        if isinstance(block, Heading):
            level = block.level
            out.append(f'<h{level} id="{esc(block.anchor)}">{esc(block.text)}</h{level}>')
        elif isinstance(block, Paragraph):
            out.append(f"<p>{_html_run(block.run)}</p>")
        elif isinstance(block, Items):
            out.append("<ul>")
            out.extend(f"<li>{_html_run(item)}</li>" for item in block.items)
            out.append("</ul>")
        elif isinstance(block, Facts):
            out.append('<dl class="consentgate-facts">')
            out.extend(
                f"<div><dt>{esc(label)}</dt><dd>{_html_run(value)}</dd></div>"
                for label, value in block.rows
            )
            out.append("</dl>")
        else:
            out.append('<div class="consentgate-table">')
            out.append("<table>")
            out.append(f"<caption>{esc(block.caption)}</caption>")
            out.append("<thead>")
            out.append(
                "<tr>" + "".join(f'<th scope="col">{esc(h)}</th>' for h in block.head) + "</tr>"
            )
            out.append("</thead>")
            out.append("<tbody>")
            out.extend(
                "<tr>" + "".join(f"<td>{_html_run(cell)}</td>" for cell in row) + "</tr>"
                for row in block.rows
            )
            out.append("</tbody>")
            out.append("</table>")
            out.append("</div>")
    out.append(f'<p class="consentgate-declaration-footer">{_html_run(footer)}</p>')
    out.append("</section>")
    return "\n".join(out) + "\n"


def _html_run(run: Run) -> str:
    esc = html.escape
    parts = []
    for piece in run:
        if isinstance(piece, str):
            parts.append(esc(piece))
        elif isinstance(piece, Code):
            parts.append(f"<code>{esc(piece.text)}</code>")
        elif isinstance(piece, Strong):
            parts.append(f"<strong>{esc(piece.text)}</strong>")
        elif isinstance(piece, Button):
            parts.append(f'<button type="button" data-consentgate-open>{esc(piece.text)}</button>')
        else:
            href = safe_href(piece.url)
            if href is None:
                parts.append(esc(_link_as_text(piece)))
            else:
                parts.append(f'<a href="{esc(href)}">{esc(piece.text)}</a>')
    return "".join(parts)


def _link_as_text(link: Link) -> str:
    return link.text if link.text == link.url else f"{link.text} ({link.url})"


# --- Markdown -----------------------------------------------------------------------------------

# Characters Markdown (CommonMark, GFM tables) may read as markup anywhere in a line.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#!])")
# At the start of a line: headings, quotes, list markers, thematic breaks, setext underlines.
_MD_LINE_START = re.compile(r"^(\s*)([#>+=-]|\d+[.)])")
_MD_CODE_SAFE = re.compile(r"^[A-Za-z0-9_.*:-]+$")


def _md_text(text: str) -> str:
    """Escape ``text`` so Markdown shows it as written; ``<``, ``>`` and ``&`` as entities.

    Whitespace runs (newlines too, which could start a block) become one space.
    """
    text = re.sub(r"\s+", " ", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_line(line: str) -> str:
    """Escape what would make ``line`` a heading, quote or list item (text was escaped)."""
    return _MD_LINE_START.sub(lambda m: m[1] + "\\" + m[2], line, count=1)


def _md_run(run: Run) -> str:
    parts = []
    for piece in run:
        if isinstance(piece, str):
            parts.append(_md_text(piece))
        elif isinstance(piece, Code):
            # Cookie names come from the settings: anything unusual is shown as plain text.
            code_safe = _MD_CODE_SAFE.match(piece.text)
            parts.append(f"`{piece.text}`" if code_safe else _md_text(piece.text))
        elif isinstance(piece, Strong):
            parts.append(f"**{_md_text(piece.text)}**")
        elif isinstance(piece, Button):
            # Raw HTML, as CommonMark allows: the banner opens its settings on any such element.
            parts.append(
                f'<button type="button" data-consentgate-open>{html.escape(piece.text)}</button>'
            )
        else:
            href = safe_href(piece.url)
            if href is None:
                parts.append(_md_text(_link_as_text(piece)))
            else:
                target = re.sub(r"[()<> ]", lambda m: f"%{ord(m[0]):02X}", href)
                parts.append(f"[{_md_text(piece.text)}]({target})")
    return "".join(parts)


def _markdown(blocks: list[Block], footer: Run) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            # An HTML anchor keeps links such as /datenschutz#youtube working where the
            # Markdown is rendered (service ids are [a-z0-9_], so it needs no escaping).
            out.append(f'<a id="{block.anchor}"></a>')
            out.append("#" * block.level + " " + _md_text(block.text))
        elif isinstance(block, Paragraph):
            out.append(_md_line(_md_run(block.run)))
        elif isinstance(block, Items):
            out.append("\n".join("- " + _md_run(item) for item in block.items))
        elif isinstance(block, Facts):
            out.append(
                "\n".join(
                    f"- **{_md_text(label)}:** {_md_run(value)}" for label, value in block.rows
                )
            )
        else:
            lines = [
                f"**{_md_text(block.caption)}**",
                "",
                "| " + " | ".join(_md_text(h) for h in block.head) + " |",
                "|" + "---|" * len(block.head),
            ]
            lines.extend(
                "| " + " | ".join(_md_run(cell) for cell in row) + " |" for row in block.rows
            )
            out.append("\n".join(lines))
    out.append("*" + _md_run(footer) + "*")
    return "\n\n".join(out) + "\n"
