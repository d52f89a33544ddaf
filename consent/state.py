"""The visitor's consent state and the signed cookie that carries it."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from consentgate.config import Settings

#: Cookies longer than this are ignored unread; a real consent cookie is ~200 characters.
MAX_COOKIE_CHARS = 1024
#: Separates consent cookies from anything else signed with the same keys.
COOKIE_SALT = "consentgate.consent-cookie.v1"
#: Verified cookie values remembered; verifying costs ~20 µs, a lookup well under one.
VERIFY_CACHE_SIZE = 4096
CONSENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")


def new_consent_id() -> str:
    """Return a fresh random consent id (128 bits, URL-safe base64, 22 characters)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class ConsentState:
    """What one visitor has decided; ``scope["consentgate"]`` holds one per request.

    An undecided state allows only necessary services. ``granted`` holds the optional
    services the visitor opted in to.
    """

    decided: bool
    consent_id: str | None = None
    granted: frozenset[str] = frozenset()
    revision: int | None = None
    decided_at: datetime | None = None
    necessary: frozenset[str] = field(default=frozenset(), repr=False)
    objected: frozenset[str] = frozenset()
    """Services the browser objects to (``DNT``, ``Sec-GPC``): blocked even if granted."""

    def allows(self, service_id: str) -> bool:
        """Return whether the service may run: necessary, or granted and not objected to."""
        if service_id in self.necessary:
            return True
        return service_id in self.granted and service_id not in self.objected

    @property
    def allowed(self) -> frozenset[str]:
        """The optional services that may run now (granted minus objected)."""
        return self.granted - self.objected if self.objected else self.granted

    @classmethod
    def undecided(cls, necessary: Iterable[str] = ()) -> ConsentState:
        """Return the state of a visitor who has not decided (or whose cookie is invalid)."""
        return cls(decided=False, necessary=frozenset(necessary))


class _ClockSigner(TimestampSigner):
    """A ``TimestampSigner`` whose clock can be injected; it stamps new cookies."""

    clock: Callable[[], float] = time.time

    def get_timestamp(self) -> int:
        return int(self.clock())


class _CompactJSON:
    """JSON without spaces: the cookie rides on every request."""

    @staticmethod
    def dumps(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"))

    @staticmethod
    def loads(data: str | bytes) -> Any:
        return json.loads(data)


class CookieCodec:
    """Signs and reads the consent cookie.

    The first of ``settings.secret_keys`` signs, every key verifies, so keys can rotate.
    Anything that is not a valid, unexpired cookie of the current revision decodes to
    "no decision" — never to consent.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        keys = [k.get_secret_value() for k in settings.secret_keys]
        signer = type("_Signer", (_ClockSigner,), {"clock": staticmethod(clock)})
        # itsdangerous wants keys oldest first and signs with the last one.
        self._serializer: URLSafeTimedSerializer = URLSafeTimedSerializer(
            list(reversed(keys)), salt=COOKIE_SALT, serializer=_CompactJSON, signer=signer
        )
        self._max_age = settings.cookie.lifetime_days * 86400
        self._revision = settings.revision
        self._optional = settings.optional_service_ids
        self._necessary = settings.necessary_service_ids
        self._undecided = ConsentState.undecided(self._necessary)
        self._clock = clock
        self._cache: dict[str, tuple[ConsentState, int] | None] = {}

    def __repr__(self) -> str:
        return f"CookieCodec(revision={self._revision}, keys=hidden)"

    @property
    def undecided(self) -> ConsentState:
        """The state of a visitor without a valid decision."""
        return self._undecided

    def encode(self, consent_id: str, granted: Iterable[str]) -> str:
        """Return the signed cookie value for a decision made now."""
        payload = {"i": consent_id, "g": sorted(set(granted)), "r": self._revision}
        return self._serializer.dumps(payload)

    def decode(self, value: str | None) -> ConsentState:
        """Return the state a cookie value proves, or the undecided state."""
        if not value or len(value) > MAX_COOKIE_CHARS:
            return self._undecided
        verified = self._verify(value)
        if verified is None:
            return self._undecided
        state, signed_at = verified
        if self._clock() - signed_at > self._max_age:
            return self._undecided
        return state

    def _verify(self, value: str) -> tuple[ConsentState, int] | None:
        """Check signature and payload of a cookie value; cached, as every request asks."""
        cached = self._cache.get(value)
        if cached is not None or value in self._cache:
            return cached
        result = self._verify_uncached(value)
        if len(self._cache) >= VERIFY_CACHE_SIZE:
            # Drop the oldest entry (dicts keep insertion order): bounded memory.
            del self._cache[next(iter(self._cache))]
        self._cache[value] = result
        return result

    def _verify_uncached(self, value: str) -> tuple[ConsentState, int] | None:
        try:
            payload, signed_at = self._serializer.loads(value, return_timestamp=True)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(payload, dict) or set(payload) != {"i", "g", "r"}:
            return None
        consent_id, granted, revision = payload["i"], payload["g"], payload["r"]
        if (
            not isinstance(consent_id, str)
            or not CONSENT_ID_PATTERN.match(consent_id)
            or type(revision) is not int
            or revision != self._revision
            or not isinstance(granted, list)
            or not all(isinstance(s, str) for s in granted)
        ):
            return None
        state = ConsentState(
            decided=True,
            consent_id=consent_id,
            # A service dropped from the settings can no longer be allowed.
            granted=frozenset(granted) & self._optional,
            revision=revision,
            decided_at=signed_at.astimezone(UTC),
            necessary=self._necessary,
        )
        return state, int(signed_at.timestamp())
