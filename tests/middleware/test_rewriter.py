"""The streaming rewriter on its own: presets, real-world HTML, chunking, bounds."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from consentgate.config import Settings
from consentgate.consent import ConsentState
from consentgate.middleware.rewriter import MAX_TAG, Blocker, HtmlRewriter

from .helpers import HOST, granting, leaks, make_settings, undecided

HEAD = b'<link rel="stylesheet" href="/_consent/banner.css?v=1" data-consentgate="style">'


@pytest.fixture(scope="module")
def cfg() -> Settings:
    return make_settings()


@pytest.fixture(scope="module")
def blocker(cfg: Settings) -> Blocker:
    return Blocker(cfg, assets_html=HEAD)


def rewrite(
    blocker: Blocker, body: bytes, state: ConsentState, chunks: list[int] | None = None
) -> bytes:
    rewriter = blocker.rewriter(state, host=HOST)
    if not chunks:
        return rewriter.feed(body) + rewriter.finish()
    out = []
    pos = 0
    for size in chunks:
        out.append(rewriter.feed(body[pos : pos + size]))
        pos += size
    out.append(rewriter.feed(body[pos:]))
    out.append(rewriter.finish())
    return b"".join(out)


def doc(body: str, head: str = "") -> bytes:
    return f'<!DOCTYPE html><html lang="de"><head>{head}</head><body>{body}</body></html>'.encode()


# The real install snippets, as the vendors publish them (IDs replaced).
SNIPPETS: dict[str, tuple[str, list[str]]] = {
    "google_tag_manager": (
        "<script>(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':\n"
        "new Date().getTime(),event:'gtm.js'});var f=d.getElementsByTagName(s)[0],\n"
        "j=d.createElement(s),dl=l!='dataLayer'?'&l='+l:'';j.async=true;j.src=\n"
        "'https://www.googletagmanager.com/gtm.js?id='+i+dl;f.parentNode.insertBefore(j,f);\n"
        "})(window,document,'script','dataLayer','GTM-XXXX');</script>\n"
        '<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-XXXX"\n'
        'height="0" width="0" style="display:none;visibility:hidden"></iframe></noscript>',
        ["gtm.start", "googletagmanager.com/ns.html"],
    ),
    "google_ads": (
        '<script async src="https://www.googletagmanager.com/gtag/js?id=AW-123456789"></script>\n'
        "<script>window.dataLayer = window.dataLayer || [];\n"
        "function gtag(){dataLayer.push(arguments);}\ngtag('js', new Date());\n"
        "gtag('config', 'AW-123456789');</script>",
        ["gtag/js?id=aw-", "gtag('config', 'AW-"],
    ),
    "etracker": (
        '<script id="_etLoader" type="text/javascript" charset="UTF-8" data-block-cookies="true"'
        ' data-respect-dnt="true" data-secure-code="XyZ123"'
        ' src="//code.etracker.com/code/e.js" async></script>',
        ["code.etracker.com"],
    ),
    "facebook_pixel": (
        "<script>\n!function(f,b,e,v,n,t,s)\n{if(f.fbq)return;n=f.fbq=function(){n.callMethod?\n"
        "n.callMethod.apply(n,arguments):n.queue.push(arguments)};\n"
        "if(!f._fbq)f._fbq=n;n.push=n;n.loaded=!0;n.version='2.0';\n"
        "n.queue=[];t=b.createElement(e);t.async=!0;\nt.src=v;s=b.getElementsByTagName(e)[0];\n"
        "s.parentNode.insertBefore(t,s)}(window, document,'script',\n"
        "'https://connect.facebook.net/en_US/fbevents.js');\n"
        "fbq('init', '1234');\nfbq('track', 'PageView');\n</script>\n"
        '<noscript><img height="1" width="1" style="display:none"\n'
        'src="https://www.facebook.com/tr?id=1234&ev=PageView&noscript=1"\n/></noscript>',
        ["fbq(", "facebook.com/tr"],
    ),
    "matomo": (
        "<script>\n  var _paq = window._paq = window._paq || [];\n  _paq.push(['trackPageView']);\n"
        '  (function() {\n    var u="https://stats.example.de/";\n'
        "    _paq.push(['setTrackerUrl', u+'matomo.php']);\n    _paq.push(['setSiteId', '1']);\n"
        "    var d=document, g=d.createElement('script'), s=d.getElementsByTagName('script')[0];\n"
        "    g.async=true; g.src=u+'matomo.js'; s.parentNode.insertBefore(g,s);\n"
        "  })();\n</script>\n"
        '<noscript><p><img src="https://stats.example.de/matomo.php?idsite=1&amp;rec=1"'
        ' style="border:0;" alt="" /></p></noscript>',
        ["_paq", "stats.example.de/matomo.php"],
    ),
    "econda": (
        '<script type="text/javascript" src="https://www.econda-monitor.de/js/emos3.js"></script>\n'
        "<script>window.emos3.send({content: 'Start'});</script>",
        ["econda-monitor.de", "emos3.send"],
    ),
    "youtube": (
        '<iframe width="560" height="315" src="https://www.youtube-nocookie.com/embed/abc"'
        ' title="Video" allowfullscreen></iframe>',
        ["youtube-nocookie.com"],
    ),
    "google_maps": (
        '<iframe src="https://www.google.com/maps/embed?pb=!1m18" width="600" height="450"'
        ' style="border:0;" loading="lazy"></iframe>',
        ["google.com/maps"],
    ),
}


@pytest.mark.parametrize("service", sorted(SNIPPETS))
def test_preset_snippet_is_blocked_without_consent(
    blocker: Blocker, cfg: Settings, service: str
) -> None:
    snippet, needles = SNIPPETS[service]
    page = doc(snippet)
    assert leaks(page, needles), "the oracle must see the snippet live in the original"
    out = rewrite(blocker, page, undecided(cfg))
    assert leaks(out, needles) == []
    assert f'data-consentgate-service="{service}"'.encode() in out


@pytest.mark.parametrize("service", sorted(SNIPPETS))
def test_preset_snippet_passes_untouched_with_consent(
    blocker: Blocker, cfg: Settings, service: str
) -> None:
    snippet, _ = SNIPPETS[service]
    page = doc(snippet)
    out = rewrite(blocker, page, granting(cfg, service))
    assert snippet.encode() in out
    # Only the head injection differs.
    assert out.replace(out[out.index(b"<head>") + 6 : out.index(b"</head>")], b"") == page


def test_only_the_refused_service_is_blocked(blocker: Blocker, cfg: Settings) -> None:
    page = doc("".join(s for s, _ in SNIPPETS.values()))
    out = rewrite(blocker, page, granting(cfg, "matomo", "youtube"))
    assert leaks(out, ["_paq", "youtube-nocookie.com"])
    assert leaks(out, ["gtm.start", "fbq(", "code.etracker.com", "google.com/maps"]) == []


def test_blocked_script_keeps_its_attributes_renamed(blocker: Blocker, cfg: Settings) -> None:
    out = rewrite(blocker, doc(SNIPPETS["etracker"][0]), undecided(cfg))
    assert (
        b'<script type="text/plain" data-consentgate-service="etracker" id="_etLoader"'
        b' data-consentgate-type="text/javascript" charset="UTF-8" data-block-cookies="true"'
        b' data-respect-dnt="true" data-secure-code="XyZ123"'
        b' data-consentgate-src="//code.etracker.com/code/e.js" async></script>'
    ) in out


def test_external_media_gets_a_placeholder(blocker: Blocker, cfg: Settings) -> None:
    out = rewrite(blocker, doc(SNIPPETS["youtube"][0]), undecided(cfg))
    assert b'data-consentgate-placeholder="youtube"' in out
    assert b'data-consentgate-action="load-once"' in out
    assert b'data-consentgate-action="allow-always"' in out
    assert b"Video abspielen" in out
    assert b"https://policies.google.com/privacy" in out
    assert b"aspect-ratio:560/315" in out
    assert b'<iframe data-consentgate-service="youtube" hidden' in out


def test_placeholder_is_labelled_with_the_embeds_own_title(blocker: Blocker, cfg: Settings) -> None:
    """Two embeds of one service get different labels (and the title is escaped)."""
    embed = (
        '<iframe title="Wasser &amp; <Strom>" src="https://www.youtube-nocookie.com/embed/a">'
        "</iframe><iframe title='Fernwärme' src=https://www.youtube-nocookie.com/embed/b>"
        "</iframe>"
    )
    out = rewrite(blocker, doc(embed), undecided(cfg))
    assert b'role="group" aria-label="YouTube: Wasser &amp; &lt;Strom&gt;"' in out
    assert 'aria-label="YouTube: Fernwärme"'.encode() in out


def test_iframe_the_author_hid_gets_no_placeholder(blocker: Blocker, cfg: Settings) -> None:
    hidden = '<iframe hidden src="https://www.youtube-nocookie.com/embed/a"></iframe>'
    out = rewrite(blocker, doc(hidden), undecided(cfg))
    assert b"data-consentgate-placeholder" not in out
    assert b"data-consentgate-hidden" not in out  # the banner leaves the author's hidden alone
    shown = rewrite(blocker, doc(SNIPPETS["youtube"][0]), undecided(cfg))
    assert b" hidden data-consentgate-hidden" in shown


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x", "vbscript:x"]
)
def test_hand_marked_code_urls_are_never_switched_on(
    blocker: Blocker, cfg: Settings, url: str
) -> None:
    marked = f'<iframe data-consentgate-service="youtube" data-consentgate-src="{url}"></iframe>'
    out = rewrite(blocker, doc(marked), granting(cfg, "youtube"))
    assert b" src=" not in out and b"data-consentgate-src=" in out


@pytest.mark.parametrize(
    ("embed", "expected"),
    [
        pytest.param(
            '<iframe src="https://www.youtube.com/embed/abc?rel=0"></iframe>',
            '<iframe src="https://www.youtube-nocookie.com/embed/abc?rel=0"></iframe>',
            id="www",
        ),
        pytest.param(
            "<iframe title=x SRC=//YouTube.com/embed/abc></iframe>",
            "<iframe title=x SRC=//www.youtube-nocookie.com/embed/abc></iframe>",
            id="scheme-relative-any-case",
        ),
        pytest.param(
            '<iframe src="https://www.youtube-nocookie.com/embed/abc"></iframe>',
            '<iframe src="https://www.youtube-nocookie.com/embed/abc"></iframe>',
            id="already-nocookie",
        ),
        pytest.param(
            '<iframe src="https://example.org/?u=https://www.youtube.com/embed/a"></iframe>',
            '<iframe src="https://example.org/?u=https://www.youtube.com/embed/a"></iframe>',
            id="not-the-src-host",
        ),
    ],
)
def test_allowed_youtube_embeds_load_in_privacy_enhanced_mode(
    blocker: Blocker, cfg: Settings, embed: str, expected: str
) -> None:
    out = rewrite(blocker, doc(embed), granting(cfg, "youtube"))
    assert expected.encode() in out


def test_placeholder_speaks_the_page_language(blocker: Blocker, cfg: Settings) -> None:
    page = doc(SNIPPETS["google_maps"][0]).replace(b'lang="de"', b'lang="en-GB"')
    out = rewrite(blocker, page, undecided(cfg))
    assert b"Show map" in out
    assert b'lang="en"' in out


def test_tracking_service_iframe_gets_no_placeholder(blocker: Blocker, cfg: Settings) -> None:
    out = rewrite(blocker, doc(SNIPPETS["google_tag_manager"][0]), undecided(cfg))
    assert b"data-consentgate-placeholder" not in out


def test_preconnect_and_dns_prefetch_are_blocked(blocker: Blocker, cfg: Settings) -> None:
    head = (
        '<link rel="preconnect" href="https://www.googletagmanager.com" crossorigin>'
        "<link rel=dns-prefetch href=//connect.facebook.net>"
        '<link rel="preload" as="script" href="https://code.etracker.com/code/e.js">'
        '<link rel="canonical" href="https://www.youtube.com/watch?v=1">'
    )
    out = rewrite(blocker, doc("", head), undecided(cfg))
    assert leaks(out, ["googletagmanager.com", "connect.facebook.net", "etracker.com"]) == []
    assert b'data-consentgate-service="google_ads google_tag_manager"' in out
    assert b'<link rel="canonical" href="https://www.youtube.com/watch?v=1">' in out
    # A preconnect to a shared host needs every service on it.
    partial = rewrite(blocker, doc("", head), granting(cfg, "google_tag_manager"))
    assert leaks(partial, ["googletagmanager.com"]) == []


def test_head_injection_order_and_consent_mode(blocker: Blocker, cfg: Settings) -> None:
    out = rewrite(blocker, doc("", SNIPPETS["google_ads"][0]), undecided(cfg))
    head = out[out.index(b"<head>") + 6 :]
    assert head.startswith(b'<script data-consentgate="consent-mode">')
    assert head.index(b"gtag('consent','default'") < head.index(HEAD) < head.index(b"gtag/js")
    assert b"'ad_storage':'denied'" in head and b"'analytics_storage':'denied'" in head
    granted = rewrite(blocker, doc("", ""), granting(cfg, "google_ads"))
    assert b"'ad_storage':'granted'" in granted and b"'ad_user_data':'granted'" in granted
    assert b"'analytics_storage':'denied'" in granted


def test_no_consent_mode_without_google_services() -> None:
    cfg = make_settings(services={"matomo": {"url": "https://stats.example.de/"}})
    out = rewrite(Blocker(cfg, assets_html=HEAD), doc(""), undecided(cfg))
    assert b"gtag(" not in out and HEAD in out


def test_injection_before_body_when_there_is_no_head_tag(blocker: Blocker, cfg: Settings) -> None:
    out = rewrite(blocker, b"<!doctype html><title>x</title><BODY><p>hi", undecided(cfg))
    assert out.index(HEAD) < out.index(b"<BODY>")
    fragment = b"<p>just a fragment</p>"
    assert rewrite(blocker, fragment, undecided(cfg)) == fragment


SPELLINGS = [
    '<SCRIPT SRC="https://CODE.ETRACKER.COM/code/e.js"></SCRIPT>',
    "<script src=//code.etracker.com/code/e.js></script>",
    "<script\nsrc\n=\n'https://code.etracker.com/code/e.js'\nasync></script>",
    '<script type="module" src="https://code.etracker.com/x.mjs"></script>',
    '<script src="https&#58;//code.etracker.com/e.js"></script>',
    '<script src=" https://code.etracker.com/e.js "></script>',
    '<script src="https://code.etr\tacker.com/e.js"></script>',
    '<script src="https:\\\\code.etracker.com\\e.js"></script>',
    '<script src="HTTPS://user@code.etracker.com:443/e.js"></script>',
    '<img srcset="/a.png 1x, https://www.facebook.com/tr?id=1 2x">',
    "<iframe SRC=https://www.youtube.com/embed/x></iframe>",
    '<script data-x=">" src="https://code.etracker.com/e.js"></script>',
    "<script>fbq('track', 'Lead');</script>",
    "<script type=text/javascript>fbq('track', 'Lead');</script>",
]


@pytest.mark.parametrize("tag", SPELLINGS)
def test_odd_spellings_are_blocked(blocker: Blocker, cfg: Settings, tag: str) -> None:
    page = doc(tag)
    needles = ["etracker.com", "etr\tacker", "facebook.com/tr", "youtube.com", "fbq("]
    assert leaks(page, needles)
    assert leaks(rewrite(blocker, page, undecided(cfg)), needles) == []


UNTOUCHED = [
    "<!-- <script src=https://code.etracker.com/e.js></script> -->",
    "<textarea><script src=https://code.etracker.com/e.js></script></textarea>",
    "<style>a[href='<script src=x>']{color:red}</style>",
    "<title>&lt;script&gt;</title>",
    '<script type="application/ld+json">{"name": "fbq(", "url": "https://code.etracker.com/"}</script>',
    "<script>var s = '<\\/script><script src=/local.js>';</script>",
    "<script>document.write('<scr'+'ipt src=\"/local.js\"></scr'+'ipt>');</script>",
    '<script type="module">import { a } from "/app.js"; a();</script>',
    "<img src=/logo.png alt='a > b'><IMG SRC=/x.png>",
    '<p title="</script>">x</p>',
]


@pytest.mark.parametrize("markup", UNTOUCHED)
def test_markup_without_live_trackers_is_untouched(
    blocker: Blocker, cfg: Settings, markup: str
) -> None:
    page = doc(markup)
    out = rewrite(blocker, page, undecided(cfg))
    assert (
        out.replace(HEAD, b"").replace(out[out.index(b"<head>") + 6 : out.index(HEAD)], b"") == page
    )


def test_script_text_naming_a_tracker_host_is_blocked(blocker: Blocker, cfg: Settings) -> None:
    page = doc(
        "<script>document.write('<scr'+'ipt src=\"https://code.etracker.com/e.js\"></scr'+'ipt>');</script>"
    )
    out = rewrite(blocker, page, undecided(cfg))
    assert b'data-consentgate-service="etracker"' in out


def test_bom_and_upper_case_document(blocker: Blocker, cfg: Settings) -> None:
    page = (
        b"\xef\xbb\xbf<!DOCTYPE HTML><HTML><HEAD>"
        b"<SCRIPT SRC=//code.etracker.com/e.js></SCRIPT></HEAD></HTML>"
    )
    out = rewrite(blocker, page, undecided(cfg))
    assert out.startswith(b"\xef\xbb\xbf<!DOCTYPE HTML><HTML><HEAD>")
    assert leaks(out, ["etracker"]) == []


def test_manual_markup_stays_blocked_then_runs_with_consent(
    blocker: Blocker, cfg: Settings
) -> None:
    manual = (
        '<script type="text/plain" data-consentgate-service="matomo">_track()</script>'
        '<iframe data-consentgate-service="youtube" data-consentgate-src="https://www.youtube-nocookie.com/embed/x"></iframe>'
        '<script data-consentgate-service="matomo" src="/m.js"></script>'
    )
    blocked = rewrite(blocker, doc(manual), undecided(cfg))
    assert leaks(blocked, ["_track", "youtube", "/m.js"]) == []
    allowed = rewrite(blocker, doc(manual), granting(cfg, "matomo", "youtube"))
    assert b'<script data-consentgate-service="matomo">_track()</script>' in allowed
    assert (
        b'<iframe data-consentgate-service="youtube" src="https://www.youtube-nocookie.com/embed/x">'
        in allowed
    )
    assert leaks(allowed, ["_track", "youtube-nocookie.com/embed/x", "/m.js"])


def test_manual_markup_with_an_unknown_service_fails_closed(
    blocker: Blocker, cfg: Settings
) -> None:
    out = rewrite(
        blocker,
        doc('<script data-consentgate-service="hotjar" src="/h.js"></script>'),
        granting(cfg),
    )
    assert leaks(out, ["/h.js"]) == []


def test_report_names_blocked_services_and_unknown_hosts(blocker: Blocker, cfg: Settings) -> None:
    rewriter = blocker.rewriter(undecided(cfg), host=HOST)
    rewriter.feed(
        doc(
            SNIPPETS["etracker"][0]
            + '<script src="https://cdn.unknown.example/x.js"></script><img src="https://img.stadtwerke.example/a.png">'
        )
    )
    rewriter.finish()
    assert rewriter.report.blocked == {"etracker": 1}
    assert rewriter.report.unknown_hosts == {"cdn.unknown.example"}


def test_oversize_inline_script_fails_closed(cfg: Settings) -> None:
    limited = make_settings(blocking={"inline_script_limit": 1024})
    blocker = Blocker(limited)
    body = "<script>" + "x=1;" * 400 + "fbq('init');</script><p>after</p>"
    for chunks in (None, [100] * 30, [7] * 300):
        out = rewrite(blocker, doc(body), undecided(limited), chunks)
        assert b'data-consentgate-blocked="too-long"' in out
        assert leaks(out, ["fbq("]) == []
        assert b"<p>after</p>" in out


def test_oversize_tag_fails_closed(blocker: Blocker, cfg: Settings) -> None:
    tag = (
        '<img alt="'
        + "a" * (MAX_TAG + 10)
        + '" src="https://www.facebook.com/tr?id=1"><p>after</p>'
    )
    for chunks in (None, [4096] * 20):
        out = rewrite(blocker, doc(tag), undecided(cfg), chunks)
        assert leaks(out, ["facebook.com"]) == []
        assert b'<img data-consentgate-blocked="too-long"><p>after</p>' in out


# -- properties ------------------------------------------------------------------------------

BENIGN = [
    "<p>Text with < and & and > signs</p>",
    '<a href="https://example.org/x?a=1&amp;b=2">link</a>',
    "<img src=/logo.png alt='a > b' width=10>",
    "<!-- a comment with <script> inside -->",
    "<!---->",
    "<!-->",
    "<!--->",
    "<!-- a <!-- b --!> <p>",
    "<!-- <iframe src=x> <!-- <script> -->",
    "<textarea><script src=x></script></textarea>",
    "<style>p>a{color:red}</style>",
    '<script>var a = "</div>"; if (a < b) {}</script>',
    "<template><p>t</p><script>local()</script></template>",
    '<script type="application/ld+json">{"@context":"https://schema.org"}</script>',
    '<script type=module>import x from "/a.js"</script>',
    "<IMG SRC=/A.PNG>",
    "<title>a<b</title>",
    "<noscript><img src=/pixel.png></noscript>",
    "<link rel=stylesheet href=/s.css>",
    "<div class=\"x\" data-y='1'>ünïcödé €</div>",
    "<iframe src=/local.html></iframe>",
    '<br/><input value="a\'b">',
    "<scripty></scripty><imgx>",
]
TRACKERS = [
    (
        '<script async src="https://www.googletagmanager.com/gtm.js?id=G"></script>',
        "googletagmanager.com/gtm.js",
    ),
    ("<SCRIPT src=//CODE.ETRACKER.COM/code/e.js></SCRIPT>", "code.etracker.com"),
    ("<script>fbq('init','1')</script>", "fbq("),
    ("<script type=text/javascript>_paq.push(['x'])</script>", "_paq.push"),
    (
        "<noscript><img src=https://stats.example.de/matomo.php?idsite=1></noscript>",
        "stats.example.de/matomo.php",
    ),
    ('<iframe src="https://www.youtube-nocookie.com/embed/a"></iframe>', "youtube-nocookie.com"),
    ("<img src='https://www.facebook.com/tr?id=1&ev=PageView'>", "facebook.com/tr"),
    ('<link rel="preconnect" href="https://connect.facebook.net">', "connect.facebook.net"),
    ("<iframe\tsrc=https://www.google.com/maps/embed?pb=1></iframe>", "google.com/maps"),
    (
        '<script type="module" src="https://www.econda-monitor.de/x.js"></script>',
        "econda-monitor.de",
    ),
]


def split_points(draw: st.DrawFn, size: int) -> list[int]:
    return sorted(draw(st.lists(st.integers(0, size), max_size=12)))


@st.composite
def chunked(draw: st.DrawFn, parts: list[str]) -> tuple[bytes, list[int]]:
    body = doc("".join(parts))
    cuts = split_points(draw, len(body))
    sizes = [b - a for a, b in zip([0, *cuts], cuts, strict=False)]
    return body, sizes


@hsettings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(), parts=st.lists(st.sampled_from(BENIGN + [t for t, _ in TRACKERS]), max_size=12)
)
def test_any_chunking_gives_the_same_output(
    blocker: Blocker, cfg: Settings, data: st.DataObject, parts: list[str]
) -> None:
    body, sizes = data.draw(chunked(parts))
    state = undecided(cfg)
    assert rewrite(blocker, body, state, sizes) == rewrite(blocker, body, state)


@hsettings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(), parts=st.lists(st.sampled_from(BENIGN + [t for t, _ in TRACKERS]), max_size=12)
)
def test_trackers_are_never_left_live(
    blocker: Blocker, cfg: Settings, data: st.DataObject, parts: list[str]
) -> None:
    body, sizes = data.draw(chunked(parts))
    needles = [n for _, n in TRACKERS]
    assert leaks(rewrite(blocker, body, undecided(cfg), sizes), needles) == []


@hsettings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(), parts=st.lists(st.sampled_from(BENIGN), max_size=12), text=st.text(max_size=40)
)
def test_html_without_trackers_is_byte_identical(
    blocker: Blocker, cfg: Settings, data: st.DataObject, parts: list[str], text: str
) -> None:
    body, sizes = data.draw(chunked([*parts, text.replace("<", " ")]))
    out = rewrite(blocker, body, undecided(cfg), sizes)
    injected = blocker.head_html(blocker.plan(frozenset()), None)
    assert out == body.replace(b"<head>", b"<head>" + injected, 1)


def test_byte_at_a_time(blocker: Blocker, cfg: Settings) -> None:
    body = doc("".join(BENIGN) + "".join(t for t, _ in TRACKERS))
    state = undecided(cfg)
    assert rewrite(blocker, body, state, [1] * len(body)) == rewrite(blocker, body, state)


def test_rewriter_type_is_exported() -> None:
    assert HtmlRewriter.__name__ == "HtmlRewriter"
