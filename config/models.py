"""The pydantic models of a consentgate settings file and of one service."""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import os
import re
import string
import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

#: The categories a service can belong to; ``necessary`` needs no consent.
Category = Literal["necessary", "preferences", "statistics", "marketing", "external_media"]
CATEGORIES: tuple[Category, ...] = (
    "necessary",
    "preferences",
    "statistics",
    "marketing",
    "external_media",
)

#: The languages the banner and the texts can speak.
Language = Literal["de", "en"]
LANGUAGES: tuple[Language, ...] = ("de", "en")

#: Google Consent Mode v2 storage types
#: (developers.google.com/tag-platform/security/guides/consent).
ConsentSignal = Literal[
    "ad_storage",
    "analytics_storage",
    "ad_user_data",
    "ad_personalization",
    "functionality_storage",
    "personalization_storage",
    "security_storage",
]

ServiceId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


def _link(value: str) -> str:
    """Accept an absolute http(s) URL or a path on this site (``/datenschutz``)."""
    parts = urlsplit(value)
    if (parts.scheme in ("http", "https") and parts.netloc) or (
        not parts.scheme and value.startswith("/") and not value.startswith("//")
    ):
        return value
    raise ValueError(
        f"{value!r} is not a link the banner can show;"
        " use https://... or a path such as /datenschutz"
    )


#: A link shown to visitors: http(s) or a site path, never ``javascript:`` and the like.
Link = Annotated[NonEmpty, AfterValidator(_link)]

# A host pattern: a plain host name, optionally with a leading "*." for every subdomain.
HOST_PATTERN = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.?$")


class _Model(BaseModel):
    """Base for every settings model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(_Model):
    """A text in German and, optionally, English."""

    de: NonEmpty
    en: NonEmpty | None = None

    def get(self, language: Language) -> str:
        """Return the text in ``language``, falling back to German."""
        if language == "en" and self.en is not None:
            return self.en
        return self.de


class Provider(_Model):
    """The company that runs a service."""

    name: NonEmpty
    address: NonEmpty
    country: CountryCode
    """ISO 3166-1 alpha-2 code of the provider's seat."""


class CookieSpec(_Model):
    """A cookie (or local-storage key) a service sets."""

    name: NonEmpty
    """The name, or a glob pattern such as ``_pk_id.*``."""
    lifetime_days: Annotated[float, Field(ge=0)] | None = None
    """How long it lives; ``None`` for a session cookie."""
    party: Literal["first", "third"] = "first"
    purpose: Localized | None = None

    def matches(self, cookie_name: str) -> bool:
        """Return whether ``cookie_name`` is this cookie (glob match, case-sensitive)."""
        return fnmatch.fnmatchcase(cookie_name, self.name)


class Service(_Model):
    """One service (tracker, embed, or necessary function) and everything known about it."""

    id: ServiceId
    name: NonEmpty
    provider: Provider
    category: Category
    purposes: list[Localized] = Field(default_factory=list)
    legal_basis: NonEmpty = "Art. 6 Abs. 1 lit. a DSGVO, § 25 Abs. 1 TDDDG"
    description: Localized
    hosts: list[str] = Field(default_factory=list)
    """Hosts its tags load from: ``www.googletagmanager.com`` or ``*.etracker.com``."""
    url_patterns: list[str] = Field(default_factory=list)
    """URL prefixes (scheme-less allowed) its tags load from, for services on shared hosts.

    ``*`` in the path matches any characters: ``connect.facebook.net/*/fbevents.js``.
    """
    signatures: list[NonEmpty] = Field(default_factory=list)
    """Substrings that identify its inline snippet, such as ``fbq(``."""
    cookies: list[CookieSpec] = Field(default_factory=list)
    consent_mode: list[ConsentSignal] = Field(default_factory=list)
    """Google Consent Mode signals granted together with this service."""
    data_transfer_countries: list[CountryCode] = Field(default_factory=list)
    """Countries outside the EU/EEA the data may go to (GDPR Art. 44 ff.), e.g. ``["US"]``."""
    privacy_policy_url: Link
    opt_out_url: Link | None = None
    honors_dnt: bool = False
    """Whether a ``DNT: 1`` header counts as an objection to this service."""
    url: str | None = None
    """The base URL of a self-hosted instance (Matomo)."""
    requires_url: bool = False
    """Set by presets of self-hosted services: the operator must give ``url``."""
    placeholder: Localized | None = None
    """The notice shown in a click-to-load placeholder (``external_media`` only)."""
    load_label: Localized | None = None
    """The label of the placeholder's load button, e.g. "Video abspielen"."""

    @field_validator("hosts")
    @classmethod
    def _check_hosts(cls, hosts: list[str]) -> list[str]:
        cleaned = []
        for host in hosts:
            low = host.strip().lower()
            if not HOST_PATTERN.match(low):
                raise ValueError(
                    f"host {host!r} is not a host name; allowed: 'cdn.example.com' or "
                    "'*.example.com' (no scheme, no path)"
                )
            cleaned.append(low.rstrip("."))
        return cleaned

    @field_validator("url_patterns")
    @classmethod
    def _check_url_patterns(cls, patterns: list[str]) -> list[str]:
        cleaned = []
        for pattern in patterns:
            bare = _strip_scheme(pattern.strip())
            if bare.startswith("{url}"):
                # Filled in from the service's `url` (self-hosted services).
                cleaned.append(bare)
                continue
            host = bare.split("/", 1)[0].lower()
            if "/" not in bare or not HOST_PATTERN.match(host):
                raise ValueError(
                    f"URL pattern {pattern!r} needs a host and a path, "
                    "e.g. 'https://stats.example.de/matomo.js'"
                )
            cleaned.append(bare)
        return cleaned

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {url!r} must be an absolute http(s) URL")
        return url if url.endswith("/") else url + "/"

    @model_validator(mode="after")
    def _check_self_hosted(self) -> Service:
        if self.requires_url and self.url is None:
            raise ValueError(
                f"service {self.id!r} is self-hosted and needs `url`, the base URL of your "
                'installation, e.g. url = "https://stats.example.de/"'
            )
        if self.category == "necessary" and self.consent_mode:
            raise ValueError("a necessary service cannot carry Google Consent Mode signals")
        return self

    def expanded_url_patterns(self) -> list[str]:
        """Return the URL patterns with ``{url}`` replaced by the service's base URL."""
        if self.url is None:
            return [p for p in self.url_patterns if "{url}" not in p]
        base = _strip_scheme(self.url)
        return [p.replace("{url}", base) for p in self.url_patterns]

    def matches_cookie(self, cookie_name: str) -> bool:
        """Return whether the app cookie ``cookie_name`` belongs to this service."""
        return any(c.matches(cookie_name) for c in self.cookies if c.party == "first")


def default_texts() -> dict[Language, BannerTexts]:
    """Return the banner texts shipped with the package."""
    from consentgate.config.presets import load_default_texts

    return load_default_texts()


def _strip_scheme(url: str) -> str:
    for prefix in ("https://", "http://", "//"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    return url


def _secure_flag(value: object) -> bool | Literal["auto"]:
    if value is True or value is False or value == "auto":
        return value
    raise ValueError(f'must be true, false or "auto" (got {value!r})')


class CookieSettings(_Model):
    """The consent cookie itself."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")] = "consentgate"
    lifetime_days: Annotated[int, Field(ge=1, le=3650)] = 365
    """How long a decision (consent or refusal alike) is remembered."""
    secure: Annotated[bool | Literal["auto"], PlainValidator(_secure_flag)] = "auto"
    """``auto`` marks the cookie Secure on HTTPS requests."""
    domain: str | None = None
    path: str = "/"


def _network(value: str) -> str:
    """Accept one IP address or CIDR network; return it normalised (``10.0.0.0/8``)."""
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address or network; use e.g. '127.0.0.1', '::1' "
            "or '10.0.0.0/8'"
        ) from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        # Peers in IPv4-mapped form are compared as IPv4, so the entry must be IPv4 too.
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            network = ipaddress.ip_network(f"{mapped}/{max(network.prefixlen - 96, 0)}")
    return str(network)


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


#: An IP address or a CIDR network, e.g. ``10.0.0.0/8``.
Network = Annotated[str, AfterValidator(_network)]


class IPSettings(_Model):
    """How the visitor's address is found (proxies) and how much of it survives masking."""

    ipv4_prefix: Annotated[int, Field(ge=0, le=32)] = 24
    """Bits kept of an IPv4 address: 24 zeroes the last octet."""
    ipv6_prefix: Annotated[int, Field(ge=0, le=128)] = 48
    """Bits kept of an IPv6 address: 48 keeps the site prefix and drops the rest."""
    trusted_proxies: list[Network] = Field(default_factory=list)
    """Reverse proxies whose ``proxy_header`` is believed; empty: the TCP peer is the client."""
    proxy_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    """The one header read from a trusted proxy: ``X-Forwarded-For`` or RFC 7239 ``Forwarded``."""

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, networks: list[str]) -> list[str]:
        for network in networks:
            if ipaddress.ip_network(network).prefixlen == 0:
                # Trusting everyone lets any visitor choose the address that gets logged.
                raise ValueError(
                    f"trusted_proxies entry {network!r} trusts every sender; list only "
                    "your proxies' addresses, e.g. '127.0.0.1' or '10.0.0.0/8'"
                )
        return networks


class AccessLogSettings(_Model):
    """The access log consentgate writes: only the fields a privacy policy promises."""

    directory: str | None = None
    """Where the daily files ``access-YYYY-MM-DD.log`` go; unset: no access log."""
    format: Literal["combined", "jsonl"] = "combined"
    """``combined``: the NCSA combined layout (GoAccess, AWStats); ``jsonl``: JSON Lines."""
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 90
    """Files whose date is more than this many days ago are deleted."""
    keep_query: bool = False
    """Log the query string too; off by default, as query strings often carry personal data."""
    sweep_interval_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    """How often the running app deletes expired files (it also does at start-up)."""
    buffer_lines: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000
    """Lines held in memory while the disk is slow; beyond this new lines are dropped."""

    @field_validator("directory")
    @classmethod
    def _check_directory(cls, directory: str | None) -> str | None:
        if directory is not None and not directory.strip():
            raise ValueError("directory must name a folder, e.g. 'logs' or '/var/log/mysite'")
        return directory


class CategoryText(_Model):
    """The name and explanation of one category in one language."""

    name: NonEmpty
    description: NonEmpty


class BannerTexts(_Model):
    """The texts of the banner in one language (defaults ship with the package)."""

    title: NonEmpty
    body: NonEmpty
    accept_all: NonEmpty
    reject_all: NonEmpty
    settings: NonEmpty
    save: NonEmpty
    privacy_link: NonEmpty
    imprint_link: NonEmpty
    third_country: NonEmpty
    withdraw_notice: NonEmpty
    load_once: NonEmpty
    allow_always: NonEmpty
    always_on: NonEmpty
    placeholder_privacy: NonEmpty
    """Link text to the provider's privacy policy in a placeholder; ``{provider}`` is filled in."""
    placeholder_notice: NonEmpty
    """Placeholder notice for services without their own; ``{service}``/``{provider}``."""
    signal_notice: NonEmpty
    """Shown when ``DNT``/``Sec-GPC`` keep services off; ``{signals}``/``{services}``."""
    provider: NonEmpty
    purpose: NonEmpty
    cookies: NonEmpty
    transfer: NonEmpty
    """The label of the third countries a service sends data to."""
    days: NonEmpty
    """A cookie lifetime; ``{n}`` is the number of days."""
    session: NonEmpty
    """The lifetime of a cookie that ends with the browser session."""
    services: NonEmpty
    """The summary that opens a category's service details; ``{n}`` is their number."""
    saved: NonEmpty
    """Announced to screen readers after a decision was stored."""
    error: NonEmpty
    """Shown when a decision could not be stored."""
    categories: dict[Category, CategoryText]

    @model_validator(mode="after")
    def _check_categories(self) -> BannerTexts:
        missing = [c for c in CATEGORIES if c not in self.categories]
        if missing:
            raise ValueError(f"categories lacks texts for {missing!r}")
        return self


class CSPSettings(_Model):
    """The consent-aware ``Content-Security-Policy`` sent with every rewritten page."""

    mode: Literal["off", "report-only", "enforce"] = "off"
    """``report-only`` sends ``Content-Security-Policy-Report-Only``: try it first."""
    report_uri: str | None = None
    script_src: list[str] = Field(default_factory=list)
    """Extra sources always allowed in ``script-src`` (your CDN, say); same for the others."""
    frame_src: list[str] = Field(default_factory=list)
    img_src: list[str] = Field(default_factory=list)
    connect_src: list[str] = Field(default_factory=list)

    @field_validator("script_src", "frame_src", "img_src", "connect_src")
    @classmethod
    def _check_sources(cls, sources: list[str]) -> list[str]:
        for source in sources:
            if not source or any(c in source for c in " ;,\t\r\n"):
                raise ValueError(
                    f"CSP source {source!r} must be one source expression without spaces, "
                    "commas or semicolons, e.g. 'cdn.example.net' or \"'self'\""
                )
        return sources


class BlockingSettings(_Model):
    """How HTML responses are rewritten."""

    enabled: bool = True
    inline_script_limit: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024
    """Inline scripts longer than this (bytes) are blocked unread: fail closed."""
    placeholders: bool = True
    """Put a click-to-load placeholder before each blocked external-media embed."""
    inject_assets: bool = True
    """Add the banner's stylesheet and script right after ``<head>``."""
    consent_mode: bool = True
    """Add the Google Consent Mode v2 default when a Google service is configured."""
    cache_bytes: Annotated[int, Field(ge=0)] = 16 * 1024 * 1024
    """Memory for remembered rewrites of identical pages; 0 turns the cache off."""


def _default_gpc() -> list[Category]:
    return ["marketing"]


class SignalSettings(_Model):
    """Browser privacy signals that count as an objection."""

    dnt: bool = True
    """``DNT: 1`` blocks every service with ``honors_dnt`` (Matomo, etracker), consent or not."""
    gpc: list[Category] = Field(default_factory=lambda: _default_gpc())
    """``Sec-GPC: 1`` counts as refusal of the services in these categories."""

    @field_validator("gpc")
    @classmethod
    def _check_gpc(cls, categories: list[Category]) -> list[Category]:
        if "necessary" in categories:
            raise ValueError("necessary services cannot be refused; remove 'necessary'")
        return categories


#: Store URL schemes a ledger exists for.
STORE_SCHEMES = ("sqlite", "redis", "rediss", "redis+cluster", "rediss+cluster")


class LedgerSettings(_Model):
    """How long consent records are kept, and where decisions wait while the store is down."""

    retention_days: Annotated[int, Field(ge=30, le=36500)] = 1095
    """Records older than this are purged (3 years: the usual limitation period for proof)."""
    spool_directory: NonEmpty = "consentgate-spool"
    """Where decisions are kept (fsync'd) while the store cannot be reached; must persist."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    """How long a decision waits for the store before it is spooled instead."""
    purge_interval_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    """How often the running app purges expired records (it also does at start-up)."""
    replay_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    """How often the running app retries storing spooled decisions."""


class DPOSettings(_Model):
    """Access for the data protection officer to the ledger over HTTP."""

    token: SecretStr | None = None
    """Bearer token for ``{prefix}/dpo/...``; unset: those endpoints do not exist."""

    @field_validator("token")
    @classmethod
    def _check_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < 32:
            raise ValueError(
                "the DPO token is too short; use at least 32 random characters, e.g. from "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return token


#: Placeholders every text of the cookie declaration may use.
DECLARATION_PLACEHOLDERS = frozenset(
    {
        "cookie_name",
        "cookie_days",
        "ipv4_prefix",
        "ipv6_prefix",
        "ipv4_example",
        "ipv4_masked",
        "revision",
        "settings_button",
    }
)
#: Placeholders the texts of one service's section (keys ``service_...``) may use as well.
DECLARATION_SERVICE_PLACEHOLDERS = frozenset(
    {"service", "provider", "address", "country", "category", "legal_basis"}
)


@functools.cache
def default_declaration_texts() -> dict[Language, dict[str, str]]:
    """Return the shipped texts of the cookie declaration (``declaration.toml``), by language."""
    text = resources.files(__package__).joinpath("declaration.toml").read_text(encoding="utf-8")
    data: dict[Language, dict[str, str]] = tomllib.loads(text)  # type: ignore[assignment]
    return data


def declaration_placeholders(key: str) -> frozenset[str]:
    """Return the placeholders the declaration text ``key`` may use (``KeyError`` if unknown).

    Every text may use ``DECLARATION_PLACEHOLDERS``; ``service_...`` texts also
    ``DECLARATION_SERVICE_PLACEHOLDERS``; and each text those its shipped wording uses.
    """
    return _declaration_placeholders()[key]


@functools.cache
def _declaration_placeholders() -> dict[str, frozenset[str]]:
    allowed: dict[str, set[str]] = {}
    for texts in default_declaration_texts().values():
        for key, template in texts.items():
            names = allowed.setdefault(key, set(DECLARATION_PLACEHOLDERS))
            names.update(field for field, _spec in template_fields(template))
            if key.startswith("service_"):
                names.update(DECLARATION_SERVICE_PLACEHOLDERS)
            names.update(_DECLARATION_EXTRA_PLACEHOLDERS.get(key, ()))
            names.discard(key)  # the button label cannot contain the button
    return {key: frozenset(names) for key, names in allowed.items()}


# Placeholders a text may use beyond those its shipped wording does.
_DECLARATION_EXTRA_PLACEHOLDERS = {"footer": ("fingerprint",)}


def template_fields(template: str) -> list[tuple[str, str]]:
    """Return the name and the rest (``!r``, ``:>9``) of each ``{placeholder}`` in ``template``.

    Raises ``ValueError`` for a single ``{`` or ``}`` (literal braces are ``{{`` and ``}}``).
    """
    found = []
    for _literal, name, spec, conversion in string.Formatter().parse(template):
        if name is not None:
            rest = (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            found.append((name, rest))
    return found


class DeclarationSettings(_Model):
    """The generated cookie declaration: the controller it names, texts replacing shipped ones."""

    controller: NonEmpty | None = None
    """Name and address of the controller, shown in the introduction (lines joined by commas)."""
    texts: dict[Language, dict[str, NonEmpty]] = Field(default_factory=dict)
    """Per language, texts replacing the shipped ones of ``declaration.toml`` by key."""

    @field_validator("texts")
    @classmethod
    def _check_texts(cls, texts: dict[Language, dict[str, str]]) -> dict[Language, dict[str, str]]:
        allowed = _declaration_placeholders()
        problems = []
        for language, table in texts.items():
            for key, template in table.items():
                where = f"in [declaration.texts.{language}]"
                if key not in allowed:
                    problems.append(
                        f"unknown text key {key!r} {where}; allowed keys: "
                        + ", ".join(sorted(allowed))
                    )
                    continue
                try:
                    fields = template_fields(template)
                except ValueError:
                    problems.append(
                        f"text {key!r} {where} has a single '{{' or '}}'; write {{{{ and }}}} "
                        "for literal braces"
                    )
                    continue
                for name, spec in fields:
                    if name not in allowed[key] or spec:
                        problems.append(
                            f"unknown placeholder {{{name}{spec}}} in text {key!r} {where}; "
                            "allowed there: " + ", ".join(f"{{{p}}}" for p in sorted(allowed[key]))
                        )
        if problems:
            raise ValueError("; ".join(problems))
        return texts

    def text(self, language: Language, key: str) -> str:
        """Return the declaration text ``key`` in ``language``: the override, else the shipped one.

        A text shipped only in German is used for English too; ``KeyError`` for unknown keys.
        """
        override = self.texts.get(language, {}).get(key)
        if override is not None:
            return override
        shipped = default_declaration_texts()
        return shipped.get(language, {}).get(key) or shipped["de"][key]


class Settings(_Model):
    """Everything consentgate needs to know; see ``Settings.from_file``."""

    secret_keys: Annotated[list[SecretStr], Field(min_length=1)]
    """Signing keys, newest first: the first signs, all verify (rotation)."""
    revision: Annotated[int, Field(ge=1)] = 1
    """The consent revision; raising it asks every visitor again."""
    prefix: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9_\-./]*[A-Za-z0-9_\-]$")] = (
        "/_consent"
    )
    store_url: NonEmpty = "sqlite:///./consentgate.db"
    policy_url: Link = "/datenschutz"
    imprint_url: Link = "/impressum"
    languages: Annotated[list[Language], Field(min_length=1)] = Field(
        default_factory=lambda: list(LANGUAGES)
    )
    """Languages offered; the first is the default."""
    cookie: CookieSettings = Field(default_factory=CookieSettings)
    ip: IPSettings = Field(default_factory=IPSettings)
    access_log: AccessLogSettings = Field(default_factory=AccessLogSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    dpo: DPOSettings = Field(default_factory=DPOSettings)
    blocking: BlockingSettings = Field(default_factory=BlockingSettings)
    csp: CSPSettings = Field(default_factory=CSPSettings)
    signals: SignalSettings = Field(default_factory=SignalSettings)
    services: dict[ServiceId, Service] = Field(default_factory=dict)
    texts: dict[Language, BannerTexts] = Field(default_factory=lambda: default_texts())
    """Banner texts per language; the shipped German and English texts are the default."""
    declaration: DeclarationSettings = Field(default_factory=DeclarationSettings)
    """The generated cookie declaration (``consentgate declaration``)."""

    @field_validator("secret_keys")
    @classmethod
    def _check_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for index, key in enumerate(keys):
            if len(key.get_secret_value()) < 32:
                # The value is never echoed: a secret must not reach logs or errors.
                raise ValueError(
                    f"signing key #{index + 1} is too short; use at least 32 random "
                    "characters, e.g. from `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))'`"
                )
        return keys

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, url: str) -> str:
        # Checked here so a typo stops the app at start-up, not at the first decision.
        # Only the scheme is echoed: a store URL may carry a password.
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in STORE_SCHEMES:
            raise ValueError(
                f"store URL scheme {scheme!r} is not supported; use "
                "sqlite:///relative/path.db, sqlite:////absolute/path.db, "
                "redis://host:6379/0, rediss://host:6380/0 or redis+cluster://host1:7000,host2:7001"
            )
        if scheme == "sqlite" and (not url.startswith("sqlite:///") or url.endswith("/")):
            raise ValueError("a SQLite store URL names a file: sqlite:///path/to/ledger.db")
        return url

    @field_validator("languages")
    @classmethod
    def _check_languages(cls, languages: list[Language]) -> list[Language]:
        if len(set(languages)) != len(languages):
            raise ValueError(f"languages {languages!r} lists a language twice")
        return languages

    @model_validator(mode="after")
    def _check_services(self) -> Settings:
        for key, service in self.services.items():
            if key != service.id:
                raise ValueError(f"services.{key} declares id {service.id!r}; they must match")
        missing = [lang for lang in self.languages if lang not in self.texts]
        if missing:
            raise ValueError(f"no banner texts for language(s) {missing!r}")
        if "en" in self.languages:
            for service in self.services.values():
                if service.description.en is None:
                    raise ValueError(
                        f"services.{service.id}.description has no English text but "
                        "languages includes 'en'"
                    )
        return self

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Read a TOML settings file; ``CONSENTGATE_*`` environment variables override it.

        ``CONSENTGATE_SECRET_KEYS`` takes comma-separated keys, newest first; nested keys
        use a double underscore (``CONSENTGATE_COOKIE__SECURE=true``). Raises
        ``ConfigError`` naming the file, each bad key and the allowed form.
        """
        from consentgate.config.loader import load_file

        return load_file(path, environ)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<settings>") -> Settings:
        """Validate settings given as a dict shaped like the TOML file (presets merged in)."""
        from consentgate.config.loader import load_mapping

        return load_mapping(data, source=source)

    def __repr__(self) -> str:
        # pydantic's repr already masks SecretStr; keep it short and obviously safe.
        return (
            f"Settings(revision={self.revision}, prefix={self.prefix!r}, "
            f"services={sorted(self.services)!r}, secret_keys=[{len(self.secret_keys)} hidden])"
        )

    @property
    def default_language(self) -> Language:
        """The first configured language."""
        return self.languages[0]

    def service(self, service_id: str) -> Service:
        """Return the configured service ``service_id`` or raise ``KeyError``."""
        return self.services[service_id]

    @property
    def optional_service_ids(self) -> frozenset[str]:
        """Ids of every configured service that needs consent."""
        return frozenset(s.id for s in self.services.values() if s.category != "necessary")

    @property
    def necessary_service_ids(self) -> frozenset[str]:
        """Ids of every configured service that needs no consent."""
        return frozenset(s.id for s in self.services.values() if s.category == "necessary")
