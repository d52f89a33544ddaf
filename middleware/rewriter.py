"""The streaming HTML rewriter: tracker tags of services without consent never leave the server.

The rewriter is a small tokenizer that stops only at the tags that matter (``script``,
``iframe``, ``img``, ``link``, ... found with one compiled regular expression over a
lower-cased copy of the input), follows the HTML tokenizer's text states (comments, raw
text in ``script``/``style``/``iframe``, ``textarea``/``title``), and copies every other byte
unchanged. Its decisions depend only on the bytes, never on how they were split into
chunks, so any chunking produces the same output. Memory is bounded: a start tag is held
until its ``>`` (at most ``MAX_TAG`` bytes) and an inline script until its end tag (at most
``inline_script_limit`` bytes); anything longer is neutralized unread (fail closed).

A blocked element keeps all its attributes; the ones that would fetch something are renamed
(``src`` -> ``data-consentgate-src``, ``type`` -> ``data-consentgate-type``), scripts get
``type="text/plain"``, and ``data-consentgate-service`` names the services it waits for
(space-separated; it may run once all of them are allowed).
"""

from __future__ import annotations

import html
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from consentgate.config import Language, Service, Settings
from consentgate.consent import ConsentState
from consentgate.middleware.matcher import ServiceIndex, parse_url, site_of

#: Unknown third-party hosts remembered per response.
MAX_REPORTED_HOSTS = 64
#: Longest start tag held back waiting for its ``>``; longer tags of interest are neutralized.
MAX_TAG = 64 * 1024

# Tags the rewriter stops at. Everything else is copied without a look. The lookahead needs
# the character after the name, so a tag start at the end of a chunk waits for the next one.
_INTERESTING = re.compile(
    rb"<(?:(s(?:cript|tyle|ource)|i(?:mg|frame)|link|h(?:ead|tml)|body|t(?:extarea|itle)"
    rb"|embed|object|video|audio|frame|xmp|no(?:embed|frames)|plaintext)(?=[\t\n\f\r />]))"
    # The rest of the tag, if it is complete: see _TAG_END.
    rb"""((?:[^>=]++|=[\t\n\f\r ]*+(?:"[^"]*+"|'[^']*+'|(?!["'])))*+>)?"""
)
# Comments are not searched for: a tag found is checked against the last "<!--" before it.
# Longest prefix of an interesting tag start that can sit at the end of a chunk ("<plaintext").
_HOLD = 11
# From the end of a tag name to the end of the tag; quotes count only after "=". A value whose
# closing quote has not arrived yet makes the match fail: the tag is incomplete.
_TAG_END = re.compile(rb"""(?:[^>=]++|=[\t\n\f\r ]*+(?:"[^"]*+"|'[^']*+'|(?!["'])))*+>""")
_ATTR = re.compile(
    rb"""([^\t\n\f\r />=][^\t\n\f\r />=]*)"""
    rb"""(?:[\t\n\f\r ]*=[\t\n\f\r ]*(?:"([^"]*)"|'([^']*)'|([^\t\n\f\r >]*)))?"""
)
_COMMENT_END = re.compile(rb"--!?>")
_EQ_OR_END = re.compile(rb"[>=]")

_RAW_TEXT = {
    b"style": b"</style",
    b"textarea": b"</textarea",
    b"title": b"</title",
    b"xmp": b"</xmp",
    b"noembed": b"</noembed",
    b"noframes": b"</noframes",
    b"iframe": b"</iframe",
}
_END_DELIMITERS = b"\t\n\f\r />"

# Attributes that make an element fetch something, per tag.
_URL_ATTRS: dict[bytes, tuple[bytes, ...]] = {
    b"script": (b"src",),
    b"img": (b"src", b"srcset"),
    b"source": (b"src", b"srcset"),
    b"iframe": (b"src",),
    b"frame": (b"src",),
    b"embed": (b"src",),
    b"object": (b"data",),
    b"video": (b"src", b"poster"),
    b"audio": (b"src",),
    b"link": (b"href", b"imagesrcset"),
}
_SRCSET = (b"srcset", b"imagesrcset")
# rel values of <link> that fetch nothing; any other rel makes the link fetch or connect.
_NON_FETCHING_RELS = frozenset(
    b"alternate canonical me author license next prev help bookmark external nofollow "
    b"noopener noreferrer opener tag shortlink".split()
)
_ORIGIN_RELS = frozenset((b"preconnect", b"dns-prefetch"))
_JS_TYPES = frozenset(
    b"text/javascript application/javascript application/ecmascript application/x-ecmascript "
    b"application/x-javascript text/ecmascript text/javascript1.0 text/javascript1.1 "
    b"text/javascript1.2 text/javascript1.3 text/javascript1.4 text/javascript1.5 text/jscript "
    b"text/livescript text/x-ecmascript text/x-javascript module".split()
)
_PREFIX = b"data-consentgate-"
# A YouTube embed URL in the standard domain, inside an iframe tag.
_YOUTUBE_EMBED = re.compile(
    rb"(?i)(\bsrc\s*=\s*[\"']?\s*(?:https?:)?//)(?:www\.|m\.)?youtube\.com/embed/"
)
# URL schemes that run code; a hand-marked element's URL with one is never switched on.
_CODE_SCHEMES = (b"javascript:", b"vbscript:", b"data:")
_SERVICE_ATTR = b"data-consentgate-service"

# Tokenizer states.
_DATA, _COMMENT, _RAW, _SCRIPT_HELD, _SKIP_TAG, _PLAINTEXT = range(6)


@dataclass(slots=True)
class RewriteReport:
    """What one response's rewrite did: for the debug log and the operator's audit."""

    blocked: dict[str, int] = field(default_factory=dict)
    """Elements neutralized per service."""
    activated: dict[str, int] = field(default_factory=dict)
    """Hand-marked elements switched on because their services are allowed."""
    unknown_hosts: set[str] = field(default_factory=set)
    """Third-party hosts the page loads from that no configured service covers."""
    oversize: int = 0
    """Tags or inline scripts too long to inspect, neutralized unread."""
    injected: bool = False

    def count(self, target: dict[str, int], ids: Iterable[str]) -> None:
        for sid in ids:
            target[sid] = target.get(sid, 0) + 1


@dataclass(frozen=True, slots=True)
class Plan:
    """What a rewrite needs for one set of allowed services, built once and reused."""

    blocked: frozenset[str]
    signatures: tuple[tuple[bytes, tuple[str, ...]], ...]
    """Signatures of blocked services only: a script matching none of them may run."""
    consent_mode: bytes
    """The Google Consent Mode default script's JavaScript, or empty."""
    tags: dict[tuple[bytes, str, str], _TagDecision] = field(default_factory=dict, compare=False)
    """Decisions on start tags already seen (sites repeat their tags on every page)."""
    scripts: dict[bytes, tuple[str, ...]] = field(default_factory=dict, compare=False)
    """Blocked services found in inline script texts already seen."""


#: Start tags and inline scripts up to these sizes have their decisions remembered.
TAG_CACHE_MAX = 4096
SCRIPT_CACHE_MAX = 16 * 1024
#: Decisions remembered per plan, each cache.
DECISIONS_PER_PLAN = 4096


@dataclass(frozen=True, slots=True)
class _TagDecision:
    """The outcome of one start tag: output (``None`` = unchanged) and report entries."""

    out: bytes | None
    hold: bool
    attrs: list[tuple[bytes, bytes | None, int, int, int]]
    blocked: tuple[str, ...]
    activated: tuple[str, ...]
    unknown: tuple[str, ...]


class Blocker:
    """Compiled blocking rules for one ``Settings``; hands out a rewriter per response."""

    PLAN_CACHE = 256

    def __init__(self, settings: Settings, *, assets_html: bytes = b"") -> None:
        self.settings = settings
        self.index = ServiceIndex(settings)
        self.optional = settings.optional_service_ids
        self.necessary = settings.necessary_service_ids
        self.assets_html = assets_html
        self.injects_assets = bool(assets_html) and settings.blocking.inject_assets
        self.external_media = frozenset(
            s.id for s in settings.services.values() if s.category == "external_media"
        )
        #: Whether allowed ``youtube.com/embed`` iframes are moved to ``youtube-nocookie.com``.
        self.nocookie = "youtube" in settings.services
        self._google = settings.blocking.consent_mode and any(
            s.consent_mode or "google" in s.provider.name.lower()
            for s in settings.services.values()
        )
        self._plans: OrderedDict[frozenset[str], Plan] = OrderedDict()
        self._placeholders: dict[tuple[str, Language, bytes, str], bytes] = {}

    def plan(self, allowed: frozenset[str]) -> Plan:
        """Return the (cached) plan for a set of allowed optional services."""
        plan = self._plans.get(allowed)
        if plan is not None:
            self._plans.move_to_end(allowed)
            return plan
        blocked = self.optional - allowed
        signatures = tuple(
            (sig, tuple(i for i in ids if i in blocked))
            for sig, ids in self.index.signatures
            if not blocked.isdisjoint(ids)
        )
        plan = Plan(blocked, signatures, self._consent_mode_js(allowed))
        self._plans[allowed] = plan
        if len(self._plans) > self.PLAN_CACHE:
            self._plans.popitem(last=False)
        return plan

    def rewriter(
        self,
        state: ConsentState,
        *,
        host: str,
        language: Language | None = None,
        nonce: str | None = None,
    ) -> HtmlRewriter:
        """Return a rewriter for one response to a visitor with ``state``."""
        return HtmlRewriter(
            self,
            self.plan(state.allowed & self.optional),
            host=host.lower(),
            language=language or self.settings.default_language,
            nonce=nonce,
        )

    def rewrite(self, body: bytes, state: ConsentState, *, host: str) -> bytes:
        """Rewrite a whole document at once (convenience for tests and tools)."""
        rewriter = self.rewriter(state, host=host)
        return rewriter.feed(body) + rewriter.finish()

    def _consent_mode_js(self, allowed: frozenset[str]) -> bytes:
        if not self._google:
            return b""
        signals = {"ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"}
        granted: set[str] = set()
        for service in self.settings.services.values():
            signals.update(service.consent_mode)
            if service.id in allowed or service.category == "necessary":
                granted.update(service.consent_mode)
        fields = ",".join(
            f"'{s}':'{'granted' if s in granted else 'denied'}'" for s in sorted(signals)
        )
        redact = "false" if "ad_storage" in granted else "true"
        return (
            "window.dataLayer=window.dataLayer||[];"
            "function gtag(){dataLayer.push(arguments);}"
            f"gtag('consent','default',{{{fields},'wait_for_update':500}});"
            f"gtag('set','ads_data_redaction',{redact});"
        ).encode()

    def head_html(self, plan: Plan, nonce: str | None) -> bytes:
        """Return what goes right after ``<head>``: Consent Mode default, then banner assets."""
        parts = []
        if plan.consent_mode:
            nonce_attr = f' nonce="{html.escape(nonce)}"' if nonce else ""
            parts.append(
                f'<script data-consentgate="consent-mode"{nonce_attr}>'.encode()
                + plan.consent_mode
                + b"</script>"
            )
        if self.settings.blocking.inject_assets and self.assets_html:
            if nonce:
                # A nonce-based CSP must let the banner load too.
                marked = f' nonce="{html.escape(nonce)}" '.encode()
                parts.append(
                    self.assets_html.replace(b"<link ", b"<link" + marked).replace(
                        b"<script ", b"<script" + marked
                    )
                )
            else:
                parts.append(self.assets_html)
        return b"".join(parts)

    def placeholder(
        self, service_id: str, language: Language, size_style: bytes, title: str = ""
    ) -> bytes:
        """Return the click-to-load placeholder put before a blocked embed.

        ``title`` is the embed's own title; it makes each placeholder's label unique.
        """
        key = (service_id, language, size_style, title)
        cached = self._placeholders.get(key)
        if cached is None:
            service = self.settings.services[service_id]
            cached = _placeholder_html(self.settings, service, language, size_style, title)
            if len(self._placeholders) < 1024:
                self._placeholders[key] = cached
        return cached


# Placeholders carry their whole look inline: they are part of the page's first paint, so
# they cannot wait for banner.css (which loads without blocking the paint). The colours are
# custom properties a site can set; the defaults meet WCAG AA contrast.
PLACEHOLDER_STYLE = (
    "box-sizing:border-box;display:flex;flex-direction:column;justify-content:center;"
    "gap:.5rem;width:100%;min-height:12rem;margin:0 0 1rem;padding:1rem 1.25rem;"
    "border:1px solid #767676;border-radius:.4rem;"
    "background:var(--consentgate-placeholder-bg,#f3f4f6);"
    "color:var(--consentgate-placeholder-fg,#1a1a1a);text-align:left;"
)
PLACEHOLDER_ACTIONS_STYLE = "display:flex;flex-wrap:wrap;gap:.5rem;margin:0"
PLACEHOLDER_BUTTON_STYLE = (
    "flex:1 1 10rem;min-height:2.75rem;margin:0;padding:.55rem 1rem;"
    "border:2px solid var(--consentgate-accent,#0b4f8a);border-radius:.4rem;"
    "background:var(--consentgate-accent,#0b4f8a);color:var(--consentgate-on-accent,#fff);"
    "font:inherit;font-weight:600;cursor:pointer"
)


def _placeholder_html(
    settings: Settings, service: Service, language: Language, size_style: bytes, title: str
) -> bytes:
    texts = settings.texts.get(language) or settings.texts[settings.default_language]
    provider = service.provider.name
    if service.placeholder is not None:
        notice = service.placeholder.get(language)
    else:
        notice = texts.placeholder_notice.format(service=service.name, provider=provider)
    load = service.load_label.get(language) if service.load_label else texts.load_once
    esc = html.escape
    sid = esc(service.id)
    style = PLACEHOLDER_STYLE + esc(size_style.decode("ascii"))
    label = f"{service.name}: {title}" if title else service.name
    return (
        f'<div class="consentgate-placeholder" data-consentgate-placeholder="{sid}"'
        f' role="group" aria-label="{esc(label)}" lang="{language}" style="{style}">'
        f'<p class="consentgate-placeholder-notice" style="margin:0">{esc(notice)}</p>'
        f'<p class="consentgate-placeholder-privacy" style="margin:0">'
        f'<a href="{esc(service.privacy_policy_url)}" target="_blank" rel="noopener noreferrer"'
        f' style="color:inherit">{esc(texts.placeholder_privacy.format(provider=provider))}</a></p>'
        f'<p class="consentgate-placeholder-actions" style="{PLACEHOLDER_ACTIONS_STYLE}">'
        f'<button type="button" data-consentgate-action="load-once" data-consentgate-for="{sid}"'
        f' style="{PLACEHOLDER_BUTTON_STYLE}">{esc(load)}</button>'
        f'<button type="button" data-consentgate-action="allow-always"'
        f' data-consentgate-for="{sid}" style="{PLACEHOLDER_BUTTON_STYLE}">'
        f"{esc(texts.allow_always)}</button></p></div>"
    ).encode()


# An attribute as parsed: lower-case name, lower-case value (None if absent), and the spans
# of the name and of the whole attribute in the input.
_Attr = tuple[bytes, bytes | None, int, int, int]


def _comment_end(low: bytes, opened: int) -> int:
    """Return where the comment starting at ``opened`` ends, or -1 if not in ``low``."""
    after = opened + 4
    if low[after : after + 1] == b">":
        return after + 1
    if low[after : after + 2] == b"->":
        return after + 2
    end = _COMMENT_END.search(low, after)
    return -1 if end is None else end.end()


def _attributes(low: bytes, start: int, end: int) -> list[_Attr]:
    attrs: list[_Attr] = []
    for m in _ATTR.finditer(low, start, end):
        value = m.group(2)
        if value is None:
            value = m.group(3)
            if value is None:
                value = m.group(4)
        attrs.append((m.group(1), value, m.start(1), m.end(1), m.end()))
    return attrs


def _attr(attrs: list[_Attr], name: bytes) -> bytes | None:
    for attr in attrs:
        if attr[0] == name:
            return attr[1] if attr[1] is not None else b""
    return None


def _original_value(attrs: list[_Attr], tag: bytes, name: bytes) -> str:
    """Return an attribute's value as written (case kept, entities decoded), or ``""``."""
    for attr_name, value, _n_start, n_end, a_end in attrs:
        if attr_name == name and value is not None:
            raw = tag[n_end:a_end].lstrip(b" \t\n\r\f=").strip(b"\"'")
            return html.unescape(raw.decode("utf-8", "replace"))[:200]
    return ""


def _srcset_urls(value: bytes) -> list[bytes]:
    urls = []
    for candidate in value.split(b","):
        parts = candidate.split()
        if parts:
            urls.append(parts[0])
    return urls


class HtmlRewriter:
    """Rewrites one HTML document fed in chunks: ``feed()`` as bytes arrive, then ``finish()``.

    Every call returns the output that is final so far; the concatenation of all returned
    chunks is the rewritten document, whatever the input chunking.
    """

    def __init__(
        self,
        blocker: Blocker,
        plan: Plan,
        *,
        host: str,
        language: Language,
        nonce: str | None = None,
    ) -> None:
        self.blocker = blocker
        self.plan = plan
        self.host = host
        self.site = site_of(host)
        self.language: Language = language
        self.nonce = nonce
        self.report = RewriteReport()
        self._index = blocker.index
        self._relative_matters = blocker.index.can_match_relative(host)
        self._limit = blocker.settings.blocking.inline_script_limit
        self._placeholders = blocker.settings.blocking.placeholders
        self._buf = b""
        self._low = b""
        self._state = _DATA
        self._raw_end = b""
        self._held_tag = b""
        self._held_attrs: list[_Attr] = []
        self._skip_mode = 0
        self._skip_name = b""
        self._comment_fresh = False
        self._head_done = not (plan.consent_mode or blocker.injects_assets)
        self._lang_seen = False

    def feed(self, data: bytes) -> bytes:
        """Take the next chunk; return the output that no later input can change."""
        if data:
            self._buf += data
            self._low += data.lower()
        return self._run(final=False)

    def finish(self) -> bytes:
        """Signal the end of the document; return the remaining output."""
        return self._run(final=True)

    # -- the tokenizer ---------------------------------------------------------------------

    def _run(self, final: bool) -> bytes:
        buf, low = self._buf, self._low
        n = len(buf)
        pos = 0
        emit = 0  # bytes from here to pos are unchanged input, copied out in one slice
        out: list[bytes] = []
        search = _INTERESTING.search
        while pos < n or (final and self._state == _SCRIPT_HELD):
            state = self._state
            if state == _DATA:
                m = search(low, pos)
                if m is None:
                    opened = low.rfind(b"<!--", pos, n)
                    if opened != -1:
                        if opened + 6 > n and not final:
                            pos = opened  # "<!-->" and "<!--->" need two more bytes to tell
                            break
                        if _comment_end(low, opened) == -1:
                            pos = opened + 4
                            self._state = _COMMENT
                            continue
                    cut = n if final else low.rfind(b"<", max(pos, n - _HOLD), n)
                    pos = n if cut == -1 else cut
                    break
                start = m.start()
                opened = low.rfind(b"<!--", pos, start)
                if opened != -1:
                    closed = _comment_end(low, opened)
                    if closed == -1:
                        pos = opened + 4  # the tag is inside a comment that goes on
                        self._state = _COMMENT
                        continue
                    if closed > start:
                        pos = closed  # the tag is inside a comment
                        continue
                name = m.group(1)
                name_end = m.end(1)
                if m.end(2) == -1:
                    if final:
                        pos = n  # the document ends inside a tag: a browser drops it
                        break
                    if n - start > MAX_TAG and name in _URL_ATTRS:
                        out.append(buf[emit:start])
                        out.append(self._oversize_tag(start, name_end, name))
                        self._state = _SKIP_TAG
                        self._skip_mode = 0
                        pos = emit = name_end
                        continue
                    pos = start
                    break
                end = m.end()
                pos = end
                if end - start > MAX_TAG and name in _URL_ATTRS:
                    out.append(buf[emit:start])
                    out.append(self._oversize_tag(start, name_end, name))
                    emit = end
                    self._after_tag(name)
                    continue
                if name in _URL_ATTRS:
                    result = self._fetching(name, start, name_end, end)
                else:
                    result = self._start_tag(name, start, name_end, end)
                if result is not None:
                    out.append(buf[emit:start])
                    out.append(result)
                    emit = end
            elif state == _COMMENT:
                end_match = _COMMENT_END.search(low, pos)
                if end_match is None:
                    pos = n if final else max(pos, n - 3)
                    break
                pos = end_match.end()
                self._state = _DATA
            elif state == _SCRIPT_HELD:
                # emit == pos: the start tag is held, its text follows.
                found = self._find_end_tag(low, b"</script", pos, final)
                if found < 0 and not final:
                    cut = -found - 2
                    if cut - pos > self._limit:
                        out.append(self._held_oversize_tag())
                        pos = cut
                        self._state = _RAW
                        self._raw_end = b"</script"
                        continue
                    break
                body_end = found if found >= 0 else n
                out.append(self._decide_held(buf[pos:body_end]))
                pos = body_end
                self._state = _DATA
            elif state == _RAW:
                found = self._find_end_tag(low, self._raw_end, pos, final)
                if found >= 0:
                    pos = found
                    self._state = _DATA
                    continue
                pos = n if final else max(pos, -found - 2)
                break
            elif state == _SKIP_TAG:
                pos = emit = self._skip_tag(low, pos, n)
            else:  # _PLAINTEXT: no end tag, ever
                pos = n
        if emit < pos:
            out.append(buf[emit:pos])
        if pos:
            self._buf = buf[pos:]
            self._low = low[pos:]
        if final:
            if self._buf:
                out.append(self._buf)
            self._buf = self._low = b""
        return b"".join(out)

    def _find_end_tag(self, low: bytes, end_tag: bytes, pos: int, final: bool) -> int:
        """Return where the raw text ends, or ``-(cut + 2)`` with ``cut`` the safe output end.

        An end tag needs one delimiter after its name; a possible end tag at the end of the
        input waits for more bytes unless the input is final.
        """
        n = len(low)
        size = len(end_tag)
        search = pos
        while True:
            i = low.find(end_tag, search)
            if i == -1:
                # Keep a tail that could be the start of the end tag.
                return -(max(pos, n - size) + 2)
            if i + size < n:
                if low[i + size] in _END_DELIMITERS:
                    return i
                search = i + 1
                continue
            if final:
                return i
            return -(i + 2)

    # -- tags --------------------------------------------------------------------------------

    def _start_tag(self, name: bytes, start: int, name_end: int, end: int) -> bytes | None:
        """Handle a tag that fetches nothing; return its replacement or ``None``."""
        raw_end = _RAW_TEXT.get(name)
        if raw_end is not None:
            self._state = _RAW
            self._raw_end = raw_end
            return None
        if name == b"head":
            return self._inject(self._buf[start:end], after=True)
        if name == b"body":
            return self._inject(self._buf[start:end], after=False)
        if name == b"html" and not self._lang_seen:
            self._lang_seen = True
            lang = _attr(_attributes(self._low, name_end, end - 1), b"lang")
            if lang:
                code = lang.decode("latin-1").strip()[:2]
                if code in self.blocker.settings.languages:
                    self.language = code
        elif name == b"plaintext":
            self._state = _PLAINTEXT
        return None

    def _inject(self, tag: bytes, *, after: bool) -> bytes | None:
        if self._head_done:
            return None
        self._head_done = True
        self.report.injected = True
        head = self.blocker.head_html(self.plan, self.nonce)
        return tag + head if after else head + tag

    def _after_tag(self, name: bytes) -> None:
        """Enter the text state that follows a start tag."""
        if name == b"script":
            self._state = _RAW
            self._raw_end = b"</script"
        elif name == b"iframe":
            self._state = _RAW
            self._raw_end = b"</iframe"
        else:
            self._state = _DATA

    def _fetching(self, name: bytes, start: int, name_end: int, end: int) -> bytes | None:
        """Handle a tag that can fetch something; return its replacement or ``None``."""
        tag = self._buf[start:end]
        key = (tag, self.host, self.language)
        tags = self.plan.tags
        decision = tags.get(key)
        if decision is None:
            decision = self._decide_tag(name, start, name_end, end, tag)
            if len(tag) <= TAG_CACHE_MAX and len(tags) < DECISIONS_PER_PLAN:
                tags[key] = decision
        report = self.report
        if decision.blocked:
            report.count(report.blocked, decision.blocked)
        if decision.activated:
            report.count(report.activated, decision.activated)
        if decision.unknown and len(report.unknown_hosts) < MAX_REPORTED_HOSTS:
            report.unknown_hosts.update(decision.unknown)
        if decision.hold:
            self._state = _SCRIPT_HELD
            self._held_tag = tag
            self._held_attrs = decision.attrs
            return b""
        self._after_tag(name)
        return decision.out

    def _decide_tag(
        self, name: bytes, start: int, name_end: int, end: int, tag: bytes
    ) -> _TagDecision:
        saved, self.report = self.report, RewriteReport()
        try:
            out = self._fetching_tag(name, start, name_end, end)
            scratch = self.report
        finally:
            self.report = saved
        hold = self._state == _SCRIPT_HELD
        return _TagDecision(
            out=None if hold or out == tag else out,
            hold=hold,
            attrs=self._held_attrs if hold else [],
            blocked=tuple(sid for sid, k in scratch.blocked.items() for _ in range(k)),
            activated=tuple(sid for sid, k in scratch.activated.items() for _ in range(k)),
            unknown=tuple(sorted(scratch.unknown_hosts)),
        )

    def _fetching_tag(self, name: bytes, start: int, name_end: int, end: int) -> bytes:
        attrs = _attributes(self._low, name_end, end - 1)
        self._after_tag(name)
        is_script = name == b"script"
        executable = True
        if is_script:
            script_type = _attr(attrs, b"type")
            if script_type is not None:
                script_type = script_type.strip()
                executable = not script_type or script_type in _JS_TYPES
        plan = self.plan
        blocked = {s for s in self._services_of(name, attrs) if s in plan.blocked}
        manual = _attr(attrs, _SERVICE_ATTR)
        if manual is not None:
            optional, necessary = self.blocker.optional, self.blocker.necessary
            for sid in manual.decode("latin-1").split():
                # An id that names no configured service fails closed.
                if sid in plan.blocked or (sid not in optional and sid not in necessary):
                    blocked.add(sid)
        if blocked:
            return self._blocked(name, start, name_end, end, attrs, sorted(blocked))
        tag_attrs = _shift(attrs, -start)
        if manual is not None and (
            (is_script and not executable)
            or any(a[0].startswith(_PREFIX) and a[0][17:] in _URL_ATTRS[name] for a in attrs)
        ):
            if is_script and _attr(attrs, b"data-consentgate-src") is None:
                # A hand-marked inline script: switched on once its text shows no blocked tracker.
                return self._hold(start, end, tag_attrs)
            self.report.count(self.report.activated, manual.decode("latin-1").split())
            tag = self._buf[start:end]
            return _rebuild(tag, name, name_end - start, end - start, tag_attrs, activate=True)
        if is_script and executable and _attr(attrs, b"src") is None:
            return self._hold(start, end, tag_attrs)
        if name == b"iframe" and self.blocker.nocookie:
            # An allowed YouTube embed still loads in privacy-enhanced mode, as the
            # privacy policy promises, whatever URL the author pasted.
            return _YOUTUBE_EMBED.sub(rb"\1www.youtube-nocookie.com/embed/", self._buf[start:end])
        return self._buf[start:end]

    def _services_of(self, name: bytes, attrs: list[_Attr]) -> tuple[str, ...]:
        origin_only = False
        if name == b"link":
            rel = _attr(attrs, b"rel")
            rels = frozenset(rel.split()) if rel else frozenset()
            if rels and rels <= _NON_FETCHING_RELS:
                return ()
            origin_only = not rels.isdisjoint(_ORIGIN_RELS)
        found: set[str] = set()
        for attr_name in _URL_ATTRS[name]:
            value = _attr(attrs, attr_name)
            if not value:
                continue
            urls = _srcset_urls(value) if attr_name in _SRCSET else [value]
            for raw in urls:
                url = parse_url(raw.decode("latin-1"), self.host)
                if url is None:
                    continue
                if url.relative and not self._relative_matters:
                    ids: tuple[str, ...] = ()
                else:
                    ids = self._index.services_for_url(url, origin_only=origin_only)
                if not ids and name == b"script":
                    ids = tuple(
                        sid
                        for sig, sids in self._index.url_signatures
                        if sig in raw
                        for sid in sids
                    )
                if ids:
                    found.update(ids)
                elif (
                    not url.relative
                    and site_of(url.host) != self.site
                    and len(self.report.unknown_hosts) < MAX_REPORTED_HOSTS
                ):
                    self.report.unknown_hosts.add(url.host)
        return tuple(sorted(found))

    def _hold(self, start: int, end: int, tag_attrs: list[_Attr]) -> bytes:
        """Hold an inline script's start tag until its text is complete."""
        self._state = _SCRIPT_HELD
        self._held_tag = self._buf[start:end]
        self._held_attrs = tag_attrs
        return b""

    def _decide_held(self, body: bytes) -> bytes:
        """Decide about a held inline script now that its text is complete; return its tag."""
        tag, attrs = self._held_tag, self._held_attrs
        if len(body) > self._limit:
            return self._held_oversize_tag()
        scripts = self.plan.scripts
        found = scripts.get(body)
        if found is None:
            hits: set[str] = set()
            for signature, ids in self.plan.signatures:
                if signature in body:
                    hits.update(ids)
            found = tuple(sorted(hits))
            if len(body) <= SCRIPT_CACHE_MAX and len(scripts) < DECISIONS_PER_PLAN:
                scripts[body] = found
        if found:
            return self._rebuild_blocked(tag, b"script", 7, len(tag), attrs, list(found))
        manual = _attr(attrs, _SERVICE_ATTR)
        if manual is not None:
            self.report.count(self.report.activated, manual.decode("latin-1").split())
            return _rebuild(tag, b"script", 7, len(tag), attrs, activate=True)
        return tag

    def _held_oversize_tag(self) -> bytes:
        """Neutralize an inline script too long to inspect (fail closed)."""
        self.report.oversize += 1
        tag = self._held_tag
        rebuilt = _rebuild(tag, b"script", 7, len(tag), self._held_attrs, renames=True)
        return rebuilt[:7] + b' type="text/plain" data-consentgate-blocked="too-long"' + rebuilt[7:]

    def _oversize_tag(self, start: int, name_end: int, name: bytes) -> bytes:
        """Neutralize a start tag too long to hold: keep its name, drop every attribute."""
        self.report.oversize += 1
        extra = b' type="text/plain"' if name == b"script" else b""
        self._skip_name = name
        return self._buf[start:name_end] + extra + b' data-consentgate-blocked="too-long">'

    def _skip_tag(self, low: bytes, pos: int, n: int) -> int:
        """Drop the rest of an oversize tag, reading quotes the way ``_TAG_END`` does."""
        while pos < n:
            mode = self._skip_mode
            if mode == 1:  # after "=": skip spaces, then a quote opens a quoted value
                while pos < n and low[pos] in b"\t\n\f\r ":
                    pos += 1
                if pos == n:
                    return n
                self._skip_mode = low[pos] if low[pos] in (0x22, 0x27) else 0
                pos += 1 if self._skip_mode else 0
                continue
            if mode:  # inside a quoted value
                close = low.find(bytes((mode,)), pos)
                if close == -1:
                    return n
                self._skip_mode = 0
                pos = close + 1
                continue
            m = _EQ_OR_END.search(low, pos)
            if m is None:
                return n
            if low[m.start()] == 0x3E:
                self._after_tag(self._skip_name)
                return m.end()
            self._skip_mode = 1
            pos = m.end()
        return n

    def _blocked(
        self,
        name: bytes,
        start: int,
        name_end: int,
        end: int,
        attrs: list[_Attr],
        blocked: list[str],
    ) -> bytes:
        tag = self._buf[start:end]
        attrs = _shift(attrs, -start)
        rebuilt = self._rebuild_blocked(tag, name, name_end - start, end - start, attrs, blocked)
        if name == b"iframe" and self._placeholders and _attr(attrs, b"hidden") is None:
            media = [s for s in blocked if s in self.blocker.external_media]
            if media and len(media) == len(blocked):
                style = _size_style(attrs, tag)
                title = _original_value(attrs, tag, b"title")
                return self.blocker.placeholder(media[0], self.language, style, title) + rebuilt
        return rebuilt

    def _rebuild_blocked(
        self,
        tag: bytes,
        name: bytes,
        name_end: int,
        end: int,
        attrs: list[_Attr],
        blocked: list[str],
    ) -> bytes:
        self.report.count(self.report.blocked, blocked)
        inserted = []
        is_script = name == b"script"
        script_type = _attr(attrs, b"type") if is_script else None
        already_plain = script_type is not None and script_type.strip() == b"text/plain"
        if is_script and not already_plain:
            inserted.append(b' type="text/plain"')
        if _attr(attrs, _SERVICE_ATTR) is None:
            inserted.append(b' data-consentgate-service="' + " ".join(blocked).encode() + b'"')
        if (
            name == b"iframe"
            and self._placeholders
            and _attr(attrs, b"hidden") is None
            and all(s in self.blocker.external_media for s in blocked)
        ):
            # Marked, so the banner un-hides only what the server hid, not the author.
            inserted.append(b" hidden data-consentgate-hidden")
        renames = set(_URL_ATTRS.get(name, ()))
        if is_script and not already_plain:
            renames.add(b"type")
        parts = [tag[:name_end], *inserted]
        last = name_end
        for attr_name, _value, n_start, n_end, _a_end in attrs:
            if attr_name in renames:
                parts.append(tag[last:n_start])
                parts.append(_PREFIX + tag[n_start:n_end])
                last = n_end
        parts.append(tag[last:end])
        return b"".join(parts)


def _size_style(attrs: list[_Attr], tag: bytes) -> bytes:
    width = _attr(attrs, b"width")
    height = _attr(attrs, b"height")
    if width and height and width.isdigit() and height.isdigit():
        return b"aspect-ratio:" + width + b"/" + height + b";max-width:" + width + b"px"
    return b""


def _rebuild(
    tag: bytes,
    name: bytes,
    name_end: int,
    end: int,
    attrs: list[_Attr],
    *,
    activate: bool = False,
    renames: bool = False,
) -> bytes:
    """Switch a hand-marked element on (``activate``) or rename its fetching attributes."""
    url_attrs = set(_URL_ATTRS.get(name, ()))
    parts = [tag[:name_end]]
    last = name_end
    previous_end = name_end
    for attr_name, value, n_start, n_end, a_end in attrs:
        if activate:
            if name == b"script" and attr_name == b"type" and value is not None:
                if value.strip() == b"text/plain":
                    parts.append(tag[last:previous_end])
                    last = a_end
            elif attr_name.startswith(_PREFIX) and not _runs_code(value):
                plain = attr_name[len(_PREFIX) :]
                if plain in url_attrs or (name == b"script" and plain == b"type"):
                    parts.append(tag[last:n_start])
                    parts.append(tag[n_start + len(_PREFIX) : n_end])
                    last = n_end
        elif renames and (attr_name in url_attrs or (name == b"script" and attr_name == b"type")):
            parts.append(tag[last:n_start])
            parts.append(_PREFIX + tag[n_start:n_end])
            last = n_end
        previous_end = a_end
    parts.append(tag[last:end])
    return b"".join(parts)


def _runs_code(value: bytes | None) -> bool:
    """Return whether a URL would run code in the page (``javascript:`` and the like)."""
    # ``value`` is lower-case already; a browser strips leading whitespace and controls.
    return value is not None and value.lstrip(bytes(range(33))).startswith(_CODE_SCHEMES)


def _shift(attrs: list[_Attr], delta: int) -> list[_Attr]:
    return [(a[0], a[1], a[2] + delta, a[3] + delta, a[4] + delta) for a in attrs]
