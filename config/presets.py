"""The vendor presets and banner texts shipped with consentgate, read from package data."""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from consentgate.config.models import BannerTexts, Language

#: The preset ids the settings file may enable with ``[services.<id>]``.
PRESET_IDS = (
    "etracker",
    "google_ads",
    "google_tag_manager",
    "facebook_pixel",
    "matomo",
    "youtube",
    "google_maps",
    "econda",
)


@functools.cache
def _read(name: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text)


def preset_data(preset_id: str) -> dict[str, Any]:
    """Return a fresh copy of the raw data of preset ``preset_id`` (``KeyError`` if unknown)."""
    data: dict[str, Any] = _deep_copy(_read("presets.toml")[preset_id])
    return data


def preset_ids() -> tuple[str, ...]:
    """Return the ids of every shipped preset, in file order."""
    return tuple(_read("presets.toml"))


def texts_data() -> dict[str, Any]:
    """Return a fresh copy of the raw shipped banner texts, keyed by language."""
    data: dict[str, Any] = _deep_copy(_read("texts.toml"))
    return data


@functools.cache
def load_default_texts() -> dict[Language, BannerTexts]:
    """Return the shipped banner texts as validated models."""
    from consentgate.config.models import BannerTexts

    return {
        cast("Language", lang): BannerTexts.model_validate(data)
        for lang, data in texts_data().items()
    }


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
