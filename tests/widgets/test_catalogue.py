"""The banner catalogue: what each language shows, and a fingerprint that tracks every text."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from consentgate.config import Settings
from consentgate.widgets import build_catalogue, build_catalogues

Data = Callable[..., dict[str, Any]]


def test_catalogue_lists_services_by_category_in_each_language(settings: Settings) -> None:
    catalogues = build_catalogues(settings)
    assert set(catalogues) == {"de", "en"}
    de = catalogues["de"].data
    assert de["texts"]["accept_all"] == "Alle akzeptieren"
    categories = {c["id"]: c["services"] for c in de["categories"]}
    assert "youtube" in categories["external_media"] and "matomo" in categories["statistics"]
    youtube = next(s for s in de["services"] if s["id"] == "youtube")
    assert youtube["load_label"] == "Video abspielen"
    assert youtube["data_transfer_countries"] == ["US"]
    english = next(s for s in catalogues["en"].data["services"] if s["id"] == "youtube")
    assert english["load_label"] == "Play video"


def test_content_is_the_canonical_json_the_fingerprint_covers(settings: Settings) -> None:
    catalogue = build_catalogue(settings, "de")
    assert json.loads(catalogue.content) == catalogue.data
    assert build_catalogue(settings, "de").fingerprint == catalogue.fingerprint, "stable"


def test_fingerprint_changes_with_any_text_or_service(settings_data: Data) -> None:
    base = build_catalogue(Settings.from_mapping(settings_data()), "de").fingerprint
    retitled = settings_data(texts={"de": {"title": "Ihre Privatsphäre"}})
    assert build_catalogue(Settings.from_mapping(retitled), "de").fingerprint != base
    fewer = settings_data()
    del fewer["services"]["econda"]
    assert build_catalogue(Settings.from_mapping(fewer), "de").fingerprint != base
    relabelled = settings_data()
    relabelled["services"]["matomo"]["description"] = {"de": "Anders.", "en": "Other."}
    assert build_catalogue(Settings.from_mapping(relabelled), "de").fingerprint != base
    assert (
        build_catalogue(Settings.from_mapping(settings_data(revision=2)), "de").fingerprint != base
    )
