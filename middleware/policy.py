"""Consent-dependent response policy: app cookies, the Content-Security-Policy, GPC and DNT."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache

from consentgate.config import Settings
from consentgate.middleware.matcher import site_of

_EXPIRED = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"


class CookiePolicy:
    """Knows which service a first-party cookie belongs to."""

    def __init__(self, settings: Settings) -> None:
        self._services = [s for s in settings.services.values() if s.category != "necessary"]
        self._own = settings.cookie.name
        self._all = list(settings.services.values())
        self.owner = lru_cache(maxsize=4096)(self._owner)
        self.known = lru_cache(maxsize=4096)(self._known)

    def _owner(self, cookie_name: str) -> str | None:
        if cookie_name == self._own:
            return None
        for service in self._services:
            if service.matches_cookie(cookie_name):
                return service.id
        return None

    def _known(self, cookie_name: str) -> bool:
        """Whether the consent cookie or any service (necessary ones too) declares the name."""
        return cookie_name == self._own or any(s.matches_cookie(cookie_name) for s in self._all)

    def keep_set_cookie(self, header_value: bytes, allowed: frozenset[str]) -> str | None:
        """Return ``None`` to keep a ``Set-Cookie`` header, or the service that blocks it."""
        name = header_value.split(b"=", 1)[0].strip().decode("latin-1")
        owner = self.owner(name)
        if owner is None or owner in allowed:
            return None
        return owner

    def expiring(
        self, cookie_names: Sequence[str], allowed: frozenset[str], host: str
    ) -> list[str]:
        """Return ``Set-Cookie`` values deleting the cookies of services not ``allowed``.

        A cookie can only be deleted with the ``Domain`` it was set with, so each name is
        expired host-only, for the host and for its site (``www.a.de`` -> ``a.de``).
        """
        headers = []
        domains = [None, host] if site_of(host) == host else [None, host, site_of(host)]
        for name in cookie_names:
            owner = self.owner(name)
            if owner is None or owner in allowed:
                continue
            for domain in domains:
                suffix = f"; Domain={domain}" if domain else ""
                headers.append(f"{name}=; {_EXPIRED}{suffix}")
        return headers


class CSPBuilder:
    """Builds the Content-Security-Policy for a set of allowed services."""

    CACHE = 256

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        csp = settings.csp
        self.header = (
            b"content-security-policy-report-only"
            if csp.mode == "report-only"
            else b"content-security-policy"
        )
        self.enabled = csp.mode != "off"
        self._cache: OrderedDict[frozenset[str], bytes] = OrderedDict()

    def sources(self, service_id: str) -> list[str]:
        """Return the CSP source expressions of one service (scheme-less, any scheme)."""
        service = self.settings.services[service_id]
        sources = list(service.hosts)
        for pattern in service.expanded_url_patterns():
            path = pattern.split("?", 1)[0].split("*", 1)[0]
            if "/" not in path:
                continue
            host, _, rest = path.partition("/")
            if rest.endswith("/") or not rest:
                sources.append(f"{host}/{rest}")
            elif "." in rest.rsplit("/", 1)[-1]:
                sources.append(f"{host}/{rest}")  # a file: exact path
            else:
                # "www.google.com/maps": the path itself and everything below it.
                sources.extend((f"{host}/{rest}", f"{host}/{rest}/"))
        return sources

    def policy(self, allowed: frozenset[str]) -> bytes:
        """Return the policy for a visitor whose allowed services are ``allowed``."""
        cached = self._cache.get(allowed)
        if cached is not None:
            return cached
        csp = self.settings.csp
        hosts: list[str] = []
        for service in self.settings.services.values():
            if service.id in allowed or service.category == "necessary":
                hosts.extend(s for s in self.sources(service.id) if s not in hosts)
        # Embeds of external media stay framable: their markup is what blocks them, and a
        # placeholder's "load once" switches one on without any recorded consent.
        media = [
            source
            for service in self.settings.services.values()
            if service.category == "external_media"
            for source in self.sources(service.id)
            if source not in hosts
        ]
        directives = [
            ("script-src", ["'self'", "'unsafe-inline'", "'unsafe-eval'", *csp.script_src], []),
            ("frame-src", ["'self'", *csp.frame_src], media),
            ("img-src", ["'self'", "data:", "blob:", *csp.img_src], []),
            ("connect-src", ["'self'", *csp.connect_src], []),
        ]
        parts = [" ".join([name, *base, *hosts, *extra]) for name, base, extra in directives]
        if csp.report_uri:
            parts.append(f"report-uri {csp.report_uri}")
        value = "; ".join(parts).encode("latin-1")
        self._cache[allowed] = value
        if len(self._cache) > self.CACHE:
            self._cache.popitem(last=False)
        return value


class Signals:
    """Which services a browser's ``DNT: 1`` and ``Sec-GPC: 1`` object to."""

    def __init__(self, settings: Settings) -> None:
        services = settings.services.values()
        self.dnt = (
            frozenset(s.id for s in services if s.honors_dnt and s.category != "necessary")
            if settings.signals.dnt
            else frozenset()
        )
        self.gpc = frozenset(s.id for s in services if s.category in settings.signals.gpc)
        self.vary = [b"DNT"] if self.dnt else []
        if self.gpc:
            self.vary.append(b"Sec-GPC")

    def objected(self, dnt: bool, gpc: bool) -> frozenset[str]:
        """Return the services objected to by the signals a request carries."""
        if dnt and gpc:
            return self.dnt | self.gpc
        return self.dnt if dnt else self.gpc if gpc else frozenset()
