"""What the visitor sees: the banner's content per language and its static files."""

from __future__ import annotations

from consentgate.widgets.assets import ASSET_TYPES, Asset, BannerAssets
from consentgate.widgets.catalogue import Catalogue, build_catalogue, build_catalogues

__all__ = [
    "ASSET_TYPES",
    "Asset",
    "BannerAssets",
    "Catalogue",
    "build_catalogue",
    "build_catalogues",
]
