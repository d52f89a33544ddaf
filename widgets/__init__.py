"""What the visitor sees: the banner's content per language, its static files, and the
cookie declaration for the privacy policy."""

from __future__ import annotations

from consentgate.widgets.assets import ASSET_TYPES, Asset, BannerAssets
from consentgate.widgets.catalogue import Catalogue, build_catalogue, build_catalogues
from consentgate.widgets.declaration import Declaration, render_declaration

__all__ = [
    "ASSET_TYPES",
    "Asset",
    "BannerAssets",
    "Catalogue",
    "Declaration",
    "build_catalogue",
    "build_catalogues",
    "render_declaration",
]
