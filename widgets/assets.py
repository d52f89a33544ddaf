"""The banner's static files (``banner.js``, ``banner.css``), versioned for long caching."""

from __future__ import annotations

import gzip
import hashlib
import html
import re
from dataclasses import dataclass
from pathlib import Path

# Whole-line comments and indentation are dropped when a file is loaded: the files in the
# package stay readable, visitors download about a fifth less. Nothing else changes, so no
# build step is involved and a comment never shares a line with code it could break.
_JS_COMMENT_LINE = re.compile(rb"^[ \t]*(//[^\n]*|/\*[^\n]*\*/[ \t]*)\n", re.M)
_CSS_COMMENT = re.compile(rb"/\*.*?\*/\n?", re.S)
_INDENT = re.compile(rb"^[ \t]+", re.M)


def compact(content: bytes, name: str) -> bytes:
    """Return ``content`` without whole-line comments and indentation."""
    pattern = _CSS_COMMENT if name.endswith(".css") else _JS_COMMENT_LINE
    return _INDENT.sub(b"", pattern.sub(b"", content))


#: The files the middleware serves under its prefix, with their media types.
ASSET_TYPES = {
    "banner.css": "text/css; charset=utf-8",
    "banner.js": "text/javascript; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file, read once: its bytes, a gzip copy and a content hash."""

    name: str
    media_type: str
    content: bytes
    gzipped: bytes
    version: str
    """The first 12 hex digits of the SHA-256 of ``content``: the cache-busting query."""

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class BannerAssets:
    """Loads the banner files from a directory (the installed package by default)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or Path(__file__).parent
        self.files: dict[str, Asset] = {}
        for name, media_type in ASSET_TYPES.items():
            path = self.directory / name
            if path.is_file():
                content = compact(path.read_bytes(), name)
                self.files[name] = Asset(
                    name=name,
                    media_type=media_type,
                    content=content,
                    gzipped=gzip.compress(content, compresslevel=9, mtime=0),
                    version=hashlib.sha256(content).hexdigest()[:12],
                )

    def url(self, prefix: str, name: str) -> str:
        """Return the versioned URL of asset ``name`` under ``prefix``."""
        return f"{prefix}/{name}?v={self.files[name].version}"

    def head_html(self, prefix: str) -> bytes:
        """Return the tags that load the banner: the stylesheet's preload, then the module.

        Neither blocks the first paint: module scripts are deferred, and the stylesheet is
        only preloaded; the module applies it before the banner shows.
        """
        parts = []
        if "banner.css" in self.files:
            href = html.escape(self.url(prefix, "banner.css"))
            # Fetched early but not render-blocking: the banner applies it before it shows.
            parts.append(f'<link rel="preload" as="style" href="{href}" data-consentgate="style">')
        if "banner.js" in self.files:
            src = html.escape(self.url(prefix, "banner.js"))
            parts.append(f'<script type="module" src="{src}" data-consentgate="script"></script>')
        return "".join(parts).encode()
