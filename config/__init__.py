"""Settings of consentgate: the TOML file, the vendor presets and the banner texts."""

from __future__ import annotations

from consentgate.config.loader import ConfigError, Problem
from consentgate.config.models import (
    CATEGORIES,
    LANGUAGES,
    AccessLogSettings,
    BannerTexts,
    Category,
    CategoryText,
    CookieSettings,
    CookieSpec,
    DPOSettings,
    IPSettings,
    Language,
    LedgerSettings,
    Localized,
    Provider,
    Service,
    Settings,
)
from consentgate.config.presets import PRESET_IDS, preset_ids

__all__ = [
    "CATEGORIES",
    "LANGUAGES",
    "PRESET_IDS",
    "AccessLogSettings",
    "BannerTexts",
    "Category",
    "CategoryText",
    "ConfigError",
    "CookieSettings",
    "CookieSpec",
    "DPOSettings",
    "IPSettings",
    "Language",
    "LedgerSettings",
    "Localized",
    "Problem",
    "Provider",
    "Service",
    "Settings",
    "preset_ids",
]
