"""What the banner shows: texts and service catalogue per language, and its fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from consentgate.config import CATEGORIES, Language, Service, Settings
from consentgate.widgets.declaration import render_declaration


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The banner content for one language, encoded once.

    ``fingerprint`` is the SHA-256 of ``content`` (canonical JSON): every consent record
    carries it, and the ledger keeps ``content`` under it, so a record can be matched to
    the exact texts and service list the visitor saw, and (``data["declaration"]``) to
    the fingerprint of the generated cookie declaration in that language.
    """

    language: Language
    data: dict[str, Any]
    content: str
    fingerprint: str


def build_catalogue(settings: Settings, language: Language) -> Catalogue:
    """Return the banner content of ``settings`` in ``language``."""
    texts = settings.texts[language]
    categories = [
        {
            "id": category,
            "name": texts.categories[category].name,
            "description": texts.categories[category].description,
            "services": [s.id for s in settings.services.values() if s.category == category],
        }
        for category in CATEGORIES
    ]
    data: dict[str, Any] = {
        "revision": settings.revision,
        "language": language,
        "texts": texts.model_dump(exclude={"categories"}),
        "policy_url": settings.policy_url,
        "imprint_url": settings.imprint_url,
        "categories": [c for c in categories if c["services"] or c["id"] == "necessary"],
        "services": [_service(s, language) for s in settings.services.values()],
        # The declaration's own fingerprint: a consent record then also pins the cookie
        # declaration and privacy-policy section the visitor could read.
        "declaration": render_declaration(settings, language).fingerprint,
    }
    content = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Catalogue(
        language=language,
        data=data,
        content=content,
        fingerprint=hashlib.sha256(content.encode()).hexdigest(),
    )


def build_catalogues(settings: Settings) -> dict[Language, Catalogue]:
    """Return the banner content for every configured language."""
    return {lang: build_catalogue(settings, lang) for lang in settings.languages}


def _service(service: Service, language: Language) -> dict[str, Any]:
    return {
        "id": service.id,
        "name": service.name,
        "category": service.category,
        "provider": service.provider.model_dump(),
        "data_transfer_countries": list(service.data_transfer_countries),
        "purposes": [p.get(language) for p in service.purposes],
        "description": service.description.get(language),
        "legal_basis": service.legal_basis,
        "consent_mode": list(service.consent_mode),
        "cookies": [
            {
                "name": c.name,
                "lifetime_days": c.lifetime_days,
                "party": c.party,
                "purpose": c.purpose.get(language) if c.purpose else None,
            }
            for c in service.cookies
        ],
        "privacy_policy_url": service.privacy_policy_url,
        "opt_out_url": service.opt_out_url,
        "placeholder": service.placeholder.get(language) if service.placeholder else None,
        "load_label": service.load_label.get(language) if service.load_label else None,
    }
