"""Helpers for the blocking tests: an independent check of what a browser would load."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

import html5lib

from consentgate.config import Settings, preset_ids
from consentgate.consent import ConsentState

KEY = "k" * 40
HOST = "www.stadtwerke.example"

_JS = {
    "",
    "text/javascript",
    "application/javascript",
    "module",
    "text/ecmascript",
    "application/ecmascript",
}
_FETCH_ATTRS = ("src", "href", "srcset", "imagesrcset", "data", "poster")
_NON_FETCHING = {"alternate", "canonical", "me", "author", "license", "next", "prev"}


Message = MutableMapping[str, Any]


async def call(app: Any, scope: dict[str, Any], body: bytes = b"") -> list[Message]:
    """Call an ASGI app with one request body; return every message it sent, unjoined."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def make_settings(**overrides: Any) -> Settings:
    services: dict[str, Any] = {
        sid: ({"url": "https://stats.example.de/"} if sid == "matomo" else {})
        for sid in preset_ids()
    }
    data: dict[str, Any] = {"secret_keys": [KEY], "services": services}
    data.update(overrides)
    return Settings.from_mapping(data)


def undecided(settings: Settings) -> ConsentState:
    return ConsentState.undecided(settings.necessary_service_ids)


def granting(settings: Settings, *services: str) -> ConsentState:
    granted = frozenset(services) if services else settings.optional_service_ids
    return ConsentState(
        decided=True,
        consent_id="c" * 22,
        granted=granted,
        revision=settings.revision,
        necessary=settings.necessary_service_ids,
    )


def _normal(value: str) -> str:
    """A URL the way a browser's parser sees it: no spaces, tabs or newlines, / for \\."""
    return re.sub(r"[\x00-\x20]", "", value).replace("\\", "/").lower()


def live_fetches(document: bytes) -> list[str]:
    """Return every URL a browser would fetch, and every executable inline script's text.

    Parsed by html5lib (a spec-conformant parser, independent of the rewriter); ``<noscript>``
    content counts as markup, as for a visitor without JavaScript.
    """
    tree = html5lib.parse(document, treebuilder="etree", namespaceHTMLElements=False)
    live: list[str] = []
    for element in tree.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag == "script":
            kind = (element.get("type") or "").strip().lower()
            if kind not in _JS:
                continue
            if element.get("src") is not None:
                live.append(_normal(element.get("src") or ""))
            else:
                live.append("inline:" + (element.text or ""))
            continue
        if tag == "link":
            rels = set((element.get("rel") or "").lower().split())
            if rels and rels <= _NON_FETCHING:
                continue
        for attr in _FETCH_ATTRS:
            value = element.get(attr)
            if value and tag in {
                "img",
                "iframe",
                "link",
                "source",
                "embed",
                "frame",
                "object",
                "video",
                "audio",
            }:
                live.append(_normal(value))
    return live


def leaks(document: bytes, needles: list[str]) -> list[str]:
    """Return the live fetches and inline scripts containing any of ``needles``.

    URLs are compared lower-case (hosts are case-insensitive); script text as written.
    """
    found = []
    for item in live_fetches(document):
        if item.startswith("inline:"):
            hit = any(n in item for n in needles)
        else:
            hit = any(n.lower() in item for n in needles)
        if hit:
            found.append(item)
    return found
