"""What the visitor sees: the banner's content per language (texts and service catalogue)."""

from __future__ import annotations

from consentgate.widgets.catalogue import Catalogue, build_catalogue, build_catalogues

__all__ = ["Catalogue", "build_catalogue", "build_catalogues"]
