"""Reducing a User-Agent header to browser and OS family, the most a consent record keeps."""

from __future__ import annotations

import functools

import user_agents

#: Longer headers are cut before parsing; real ones are well below.
MAX_UA_CHARS = 512


@functools.lru_cache(maxsize=2048)
def reduce_user_agent(header: str) -> tuple[str, str]:
    """Return ``(browser family, OS family)``, e.g. ``("Firefox", "Windows")``.

    Versions and device details are dropped: they add to a fingerprint and prove nothing
    about consent. Parsing costs about a millisecond, hence the cache keyed by the header.
    """
    if not header:
        return ("Other", "Other")
    parsed = user_agents.parse(header[:MAX_UA_CHARS])
    return (str(parsed.browser.family), str(parsed.os.family))
