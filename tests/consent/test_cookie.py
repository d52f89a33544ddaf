"""The signed consent cookie: round trip, rotation, and everything that must not count."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer

from consentgate.config import Settings
from consentgate.consent import CookieCodec, new_consent_id
from consentgate.consent.state import COOKIE_SALT, MAX_COOKIE_CHARS

Data = Callable[..., dict[str, Any]]
NEW, OLD, OTHER = "n" * 40, "o" * 40, "x" * 40


def make_codec(
    data: Data, keys: list[str], clock: Callable[[], float] = time.time, **extra: Any
) -> CookieCodec:
    return CookieCodec(Settings.from_mapping(data(secret_keys=keys, **extra)), clock=clock)


def test_round_trip_carries_id_services_revision_and_time(settings_data: Data) -> None:
    codec = make_codec(settings_data, [NEW], clock=lambda: 1_800_000_000.0)
    consent_id = new_consent_id()
    state = codec.decode(codec.encode(consent_id, ["matomo", "youtube"]))
    assert state.decided
    assert state.consent_id == consent_id
    assert state.granted == {"matomo", "youtube"}
    assert state.revision == 1
    assert state.decided_at is not None and state.decided_at.timestamp() == 1_800_000_000
    assert state.allows("matomo") and not state.allows("facebook_pixel")


def test_cookie_is_compact(settings_data: Data) -> None:
    codec = make_codec(settings_data, [NEW])
    value = codec.encode(new_consent_id(), [s for s in codec._optional])
    assert len(value) < 300, "the cookie rides on every request"


def test_key_rotation_old_key_verifies_new_key_signs(settings_data: Data) -> None:
    before = make_codec(settings_data, [OLD])
    after = make_codec(settings_data, [NEW, OLD])
    only_new = make_codec(settings_data, [NEW])
    old_cookie = before.encode(new_consent_id(), ["matomo"])
    assert after.decode(old_cookie).granted == {"matomo"}
    new_cookie = after.encode(new_consent_id(), ["econda"])
    assert only_new.decode(new_cookie).decided, "the newest key must be the signing key"
    assert not before.decode(new_cookie).decided


def test_undecided_state_allows_only_necessary(
    settings_data: Data, necessary_service: dict[str, Any]
) -> None:
    data = settings_data()
    data["services"]["session"] = necessary_service
    codec = CookieCodec(Settings.from_mapping(data))
    state = codec.decode(None)
    assert not state.decided and state.consent_id is None
    assert state.allows("session")
    assert not any(state.allows(s) for s in codec._optional)


def forged_cases(codec: CookieCodec, data: Data) -> dict[str, str]:
    good = codec.encode(new_consent_id(), ["matomo"])
    payload, signature = good.rsplit(".", 1)
    other = make_codec(data, [OTHER]).encode(new_consent_id(), ["matomo"])
    raw = URLSafeTimedSerializer(NEW, salt=COOKIE_SALT)
    return {
        "empty": "",
        "garbage": "not-a-cookie",
        "truncated": good[: len(good) - 5],
        "signature_flipped": payload + "." + signature[::-1],
        "foreign_key": other,
        "other_salt": URLSafeTimedSerializer(NEW, salt="elsewhere").dumps(
            {"i": new_consent_id(), "g": ["matomo"], "r": 1}
        ),
        "oversize": good + "A" * MAX_COOKIE_CHARS,
        "wrong_shape": raw.dumps(["matomo"]),
        "extra_key": raw.dumps({"i": new_consent_id(), "g": ["matomo"], "r": 1, "x": 1}),
        "bad_id": raw.dumps({"i": "short", "g": ["matomo"], "r": 1}),
        "revision_as_text": raw.dumps({"i": new_consent_id(), "g": ["matomo"], "r": "1"}),
        "services_not_list": raw.dumps({"i": new_consent_id(), "g": "matomo", "r": 1}),
    }


CASES = [
    "empty",
    "garbage",
    "truncated",
    "signature_flipped",
    "foreign_key",
    "other_salt",
    "oversize",
    "wrong_shape",
    "extra_key",
    "bad_id",
    "revision_as_text",
    "services_not_list",
]


@pytest.mark.parametrize("case", CASES)
def test_forged_or_malformed_cookies_count_as_no_decision(settings_data: Data, case: str) -> None:
    codec = make_codec(settings_data, [NEW])
    state = codec.decode(forged_cases(codec, settings_data)[case])
    assert not state.decided
    assert not state.allows("matomo")


def test_expired_cookie_counts_as_no_decision(settings_data: Data) -> None:
    now = [1_800_000_000.0]
    codec = make_codec(settings_data, [NEW], clock=lambda: now[0], cookie={"lifetime_days": 30})
    value = codec.encode(new_consent_id(), ["matomo"])
    now[0] += 29 * 86400
    assert codec.decode(value).decided
    now[0] += 2 * 86400
    assert not codec.decode(value).decided


def test_stale_revision_asks_again(settings_data: Data) -> None:
    old = make_codec(settings_data, [NEW], revision=1)
    new = make_codec(settings_data, [NEW], revision=2)
    value = old.encode(new_consent_id(), ["matomo"])
    assert old.decode(value).decided
    assert not new.decode(value).decided


def test_services_no_longer_configured_are_not_allowed(settings_data: Data) -> None:
    codec = make_codec(settings_data, [NEW])
    value = codec.encode(new_consent_id(), ["matomo", "vanished_service"])
    assert codec.decode(value).granted == {"matomo"}


def test_codec_repr_hides_keys(settings_data: Data) -> None:
    assert NEW not in repr(make_codec(settings_data, [NEW]))
