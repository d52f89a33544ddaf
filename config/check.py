"""``consentgate check``: every problem of a settings file at once, each with its fix.

The file is read the way the app reads it (``CONSENTGATE_*`` variables override it). Every
validation problem becomes an error. On top come checks of things the app accepts but an
operator should not ship: a missing or guessable signing key, secrets written into the file,
a Content-Security-Policy that cannot allow a service, retention periods and a cookie
lifetime beyond what German privacy policies promise, and a SQLite ledger whose location
depends on the working directory. Those checks look at each value on its own, so a mistake
in one place never hides a warning about another.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, TextIO, Union, get_args, get_origin
from urllib.parse import urlsplit

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from consentgate.config.loader import (
    ConfigError,
    Problem,
    _env_overrides,  # the same overlay the app applies, so the check sees what it sees
    _set_path,
    load_mapping,
)
from consentgate.config.models import Service, Settings
from consentgate.config.presets import preset_data, preset_ids

#: The settings file when neither a path nor ``$CONSENTGATE_CONFIG`` names one (the same
#: default as ``consentgate.consent.cli.DEFAULT_CONFIG``; config/ must not import consent/).
DEFAULT_CONFIG = "consentgate.toml"

KEY_COMMAND = 'python -c "import secrets; print(secrets.token_hex(32))"'
SECRET_FIX = (
    f"generate one with {KEY_COMMAND} and set CONSENTGATE_SECRET_KEYS in the server's environment"
)
DPO_TOKEN_FIX = (
    f"generate one with {KEY_COMMAND} and set CONSENTGATE_DPO__TOKEN in the server's environment"
)

#: The privacy policies consentgate serves promise to delete access logs after 90 days at the
#: latest (see the seed policies in the brief).
ACCESS_LOG_MAX_DAYS = 90
#: Less than a week leaves no time to look into an attack or an outage (the BGH accepted
#: seven days of IP logs for fault detection: BGH, 3 July 2014, III ZR 391/13).
ACCESS_LOG_MIN_DAYS = 7
#: Consent records prove consent (Art. 7(1) GDPR); claims can be raised for three years
#: (§ 195 BGB), hence the default of 1095 days. Under a year is clearly too short.
LEDGER_MIN_DAYS = 365
#: Beyond ten years no proof needs them: storage limitation, Art. 5(1)(e) GDPR.
LEDGER_MAX_DAYS = 3650
#: 13 months: the longest lifetime the CNIL accepts for a consent cookie, widely followed in
#: Germany, where the DSK asks for a proportionate period.
COOKIE_MAX_DAYS = 395
#: A key of at least 32 characters using fewer distinct characters than this is a repeated
#: word or pattern, never the output of a random generator (32 random hex digits use fewer
#: than 8 of the 16 with a probability of about 1e-7).
WEAK_KEY_DISTINCT = 8

#: Stands in for the signing keys while parts of the settings are validated on their own.
#: It never reaches the output: only values of the file and the environment do.
_STAND_IN_KEY = "consentgate-check-stand-in-key-0123456789"
#: Secret values shorter than this are not searched for in the output (they would match
#: ordinary words); the loader never echoes secrets anyway, this is the second line.
_REDACT_MIN = 6

#: Examples for the fields a service that is not a preset must declare.
_SERVICE_EXAMPLES = {
    "name": 'name = "Newsletter"',
    "provider": (
        'provider = { name = "Stadtwerke Musterstadt GmbH", '
        'address = "Hauptstraße 1, 12345 Musterstadt", country = "DE" }'
    ),
    "category": 'category = "preferences"',
    "description": 'description = { de = "Merkt sich Ihre Anmeldung.", en = "Remembers ..." }',
    "privacy_policy_url": 'privacy_policy_url = "/datenschutz"',
}
#: What a table name under ``services`` or ``texts`` may be.
_TABLE_NAME_FIXES = {
    "services": (
        "a service id is lowercase letters, digits and _, starting with a letter (at most 40), "
        "e.g. [services.newsletter]"
    ),
    "texts": "name the table after a language of the banner: [texts.de] or [texts.en]",
}
#: Fields of a service that a settings file does not set.
_INTERNAL_SERVICE_FIELDS = frozenset({"id", "requires_url"})

_ORIGIN = re.compile(r" \[from environment variable (?P<name>[A-Z0-9_]+)\]$")
_NO_ENGLISH = re.compile(r"^services\.(?P<id>\w+)\.description has no English text")
_GOT = re.compile(r" \(got .*\)$")
_ADVICE = ("use ", "list ", "remove ", "set ", "check ", "add ", "allowed: ")


@dataclass(frozen=True)
class Finding:
    """One problem of a settings file: how bad, where (dotted key), what, and the fix."""

    severity: Literal["error", "warning"]
    key: str
    """The dotted settings key, e.g. ``cookie.lifetime_days``; ``""`` for the file itself."""
    message: str
    fix: str


def run(
    path: str | None,
    *,
    strict: bool = False,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    """Check the settings file and print every finding; returns the exit status.

    ``path`` falls back to ``$CONSENTGATE_CONFIG``, then ``./consentgate.toml``. Exit status:
    0 no errors (warnings allowed), 1 errors (or warnings with ``strict``), 2 the file cannot
    be read or is not TOML.
    """
    env = os.environ if environ is None else environ
    stream = sys.stdout if out is None else out
    source = path or env.get("CONSENTGATE_CONFIG") or DEFAULT_CONFIG
    try:
        findings = check_file(source, env)
    except ConfigError as exc:
        for problem in exc.problems:
            stream.write(f"{source}: {problem}\n")
        return 2
    stream.write(format_findings(source, findings))
    errors = sum(f.severity == "error" for f in findings)
    return 1 if errors or (strict and findings) else 0


def format_findings(source: str, findings: Sequence[Finding]) -> str:
    """Return the report ``run`` prints: a summary line, then each finding and its fix."""
    if not findings:
        return f"{source}: no problems found\n"
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    counts = [
        f"{n} {word}{'' if n == 1 else 's'}"
        for n, word in ((errors, "error"), (warnings, "warning"))
        if n
    ]
    lines = [f"{source}: {', '.join(counts)}"]
    for finding in findings:
        where = f"{finding.key}: " if finding.key else ""
        lines.append(f"{finding.severity:<8} {where}{finding.message}")
        lines.append(f"{'':<8} fix: {finding.fix}")
    return "\n".join(lines) + "\n"


def check_file(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> list[Finding]:
    """Return every finding for the settings file at ``path``, errors first.

    ``environ`` (default ``os.environ``) is applied as the app applies it. Raises
    ``ConfigError`` when the file cannot be read or is not TOML.
    """
    source = os.fspath(path)
    env = os.environ if environ is None else environ
    in_file = _read(source)
    data = copy.deepcopy(in_file)
    overrides = _env_overrides(env)
    for keys, value, _name in overrides:
        _set_path(data, keys, value)
    context = _Context(
        source=source,
        in_file=in_file,
        data=data,
        origins={".".join(keys): name for keys, _value, name in overrides},
    )
    findings = [*_validation_findings(context), *_value_findings(context)]
    findings.sort(key=lambda f: f.severity != "error")  # stable: errors first, else in order
    return _redacted(findings, _secret_values(data))


@dataclass
class _Context:
    source: str
    in_file: dict[str, Any]
    """The file as written."""
    data: dict[str, Any]
    """The file with the environment applied: what the app validates."""
    origins: dict[str, str] = field(default_factory=dict)
    """Dotted key -> the environment variable that set it."""

    def origin(self, key: str) -> str:
        """A suffix naming the environment variable that set ``key``, if one did."""
        for prefix, name in self.origins.items():
            if key == prefix or key.startswith(prefix + "."):
                return f" [from environment variable {name}]"
        return ""


def _read(source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(source).read_text(encoding="utf-8"))
    except FileNotFoundError:
        message = (
            "file not found; pass the path (consentgate check path/to/consentgate.toml) "
            "or set CONSENTGATE_CONFIG"
        )
    except IsADirectoryError:
        message = "is a directory; pass the settings file, e.g. consentgate.toml"
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror}"
    except UnicodeDecodeError:
        message = "cannot read the file: it is not UTF-8 text"
    except tomllib.TOMLDecodeError as exc:
        message = f"not valid TOML: {exc}"
    raise ConfigError(source, [Problem("", message)])


# --- validation problems -----------------------------------------------------------------


def _validation_findings(context: _Context) -> Iterator[Finding]:
    """The loader's problems, each with a fix, plus the ones it reports only one at a time."""
    problems = _problems(context)
    data = context.data
    if _secret_missing(data):
        # Reported by _secret_findings with the fix; a second line would say the same.
        problems = [p for p in problems if p.key.split(".")[0] != "secret_keys"]
    # A self-hosted service without `url` is reported by _self_hosted_findings, also when
    # another mistake in its table kept the model from getting that far.
    unhosted = {f"services.{sid}" for sid in _services_without_url(data)}
    problems = [p for p in problems if p.key not in unhosted]
    # A table name that is not allowed ([texts.fr], [services.Bad-Id]) is the one problem of
    # that table: what pydantic says about its contents follows from it.
    bad_names = {p.key.removesuffix(".[key]") for p in problems if p.key.endswith(".[key]")}
    problems = [
        p
        for p in problems
        if p.key.endswith(".[key]")
        or not any(p.key == name or p.key.startswith(name + ".") for name in bad_names)
    ]

    missing: dict[str, list[str]] = {}
    for problem in problems:
        parts = problem.key.split(".")
        if _is_missing_service_field(parts, data):
            missing.setdefault(parts[1], []).append(parts[2])
    for service_id, fields in missing.items():
        yield _custom_service_finding(service_id, fields, context)
    for problem in problems:
        if not _is_missing_service_field(problem.key.split("."), data):
            yield _finding_for(problem, context)


def _problems(context: _Context) -> list[Problem]:
    """The loader's problems; if it stopped at a malformed table, also those of the rest."""
    problems: list[Problem] = []
    data: dict[str, Any] | None = context.data
    # The loader stops before validating when `services` or `texts` is malformed; drop the
    # malformed parts and validate once more so the rest is reported in the same run.
    for _attempt in range(2):
        if data is None:
            break
        try:
            load_mapping(data, source=context.source, env_names=context.origins)
        except ConfigError as exc:
            problems.extend(p for p in exc.problems if p not in problems)
        data = _without_malformed_tables(data)
    return problems


def _without_malformed_tables(data: dict[str, Any]) -> dict[str, Any] | None:
    """``data`` without what the loader refuses before validation, or ``None`` if nothing."""
    cleaned = dict(data)
    changed = False
    services = cleaned.get("services", {})
    if not isinstance(services, Mapping):
        del cleaned["services"]
        changed = True
    else:
        kept = {
            sid: table
            for sid, table in services.items()
            if isinstance(table, Mapping) and table.get("id", sid) == sid
        }
        if len(kept) != len(services):
            cleaned["services"] = kept
            changed = True
    if "texts" in cleaned and not isinstance(cleaned["texts"], Mapping):
        del cleaned["texts"]
        changed = True
    return cleaned if changed else None


def _finding_for(problem: Problem, context: _Context) -> Finding:
    """Turn one loader problem into an error with a concrete fix."""
    message = problem.message
    origin = _ORIGIN.search(message)
    if origin:
        message = message[: origin.start()]
    message, advice = _split_advice(message)
    key = problem.key
    parts = key.split(".") if key else []
    fix: str | None
    if parts[-1:] == ["[key]"]:
        key, parts = key.removesuffix(".[key]"), parts[:-1]
        fix = _TABLE_NAME_FIXES.get(parts[0])
    elif key == "dpo.token":
        fix = DPO_TOKEN_FIX
    elif parts[:1] == ["secret_keys"]:
        fix = SECRET_FIX
    elif (unknown := _unknown_key_fix(parts, context.data)) is not None:
        fix = unknown
    elif not key and (match := _NO_ENGLISH.match(message)):
        key = f"services.{match['id']}.description"
        fix = (
            'give it an English text, description = { de = "...", en = "..." }, '
            'or set languages = ["de"]'
        )
    else:
        fix = advice or _fix_from_field(parts)
    if origin:
        name = origin["name"]
        message += f" [from environment variable {name}]"
        fix = f"change or unset {name}: {fix}" if fix else f"change or unset {name}"
    return Finding("error", key, message, fix or "correct the value as the message says")


def _split_advice(message: str) -> tuple[str, str | None]:
    """Split ``"x is wrong; use y"`` or ``"x needs y, e.g. z"`` into problem and advice."""
    got = _GOT.search(message)
    value = got.group(0) if got else ""
    if got:
        message = message[: got.start()]
    head, sep, tail = message.partition("; ")
    if sep and tail.startswith(_ADVICE):
        if tail.startswith("allowed: "):
            tail = "use " + tail.removeprefix("allowed: ")
        return head + value, tail
    head, sep, tail = message.partition(", e.g. ")
    if sep:
        return head + value, f"write it like {tail}"
    return message + value, None


def _unknown_key_fix(parts: list[str], data: Mapping[str, Any]) -> str | None:
    """The fix for a key no model knows, or ``None`` if ``parts`` is not such a key."""
    if not parts or not _present(data, parts):
        return None
    owner = _owner_model(parts[:-1])
    leaf = parts[-1]
    if owner is None or leaf in owner.model_fields:
        return None
    known = [name for name in owner.model_fields if not _internal(owner, name)]
    table = _table(parts[:-1])
    if owner is Settings and leaf in preset_ids():
        return f"services are tables under services: write [services.{leaf}]"
    close = difflib.get_close_matches(leaf, known, n=1)
    hint = f"did you mean {close[0]}? Otherwise remove it; " if close else "remove it; "
    where = f"[{table}]" if table else "the top level"
    return f"{hint}{where} takes {', '.join(known)}"


def _internal(model: type[BaseModel], name: str) -> bool:
    return model is Service and name in _INTERNAL_SERVICE_FIELDS


def _is_missing_service_field(parts: list[str], data: Mapping[str, Any]) -> bool:
    """Whether ``parts`` names a required field absent from a service that is not a preset."""
    if len(parts) != 3 or parts[0] != "services" or parts[1] in preset_ids():
        return False
    if parts[2] in _INTERNAL_SERVICE_FIELDS:
        return False
    info = Service.model_fields.get(parts[2])
    return info is not None and info.is_required() and not _present(data, parts)


def _custom_service_finding(service_id: str, fields: list[str], context: _Context) -> Finding:
    close = difflib.get_close_matches(service_id, preset_ids(), n=1)
    message = (
        f"{service_id!r} is not a preset, so it must declare {', '.join(fields)}"
        f"{context.origin('services.' + service_id)}"
    )
    examples = "; ".join(_SERVICE_EXAMPLES.get(name, name) for name in fields)
    fix = f"add to [services.{service_id}]: {examples}"
    if close:
        fix = f"did you mean the preset {close[0]!r}? Then name the table [services.{close[0]}]; "
        fix += f"otherwise add: {examples}"
    return Finding("error", f"services.{service_id}", message, fix)


def _fix_from_field(parts: list[str]) -> str | None:
    """Describe the allowed form of the field ``parts`` names, with an example."""
    item = False
    while parts and parts[-1].isdigit():  # an item of a list
        parts, item = parts[:-1], True
    if not parts:
        return None
    owner = _owner_model(parts[:-1])
    info = owner.model_fields.get(parts[-1]) if owner is not None else None
    if info is None:
        return None
    leaf, table = parts[-1], _table(parts[:-1])
    where = f" in [{table}]" if table else ""
    if parts[0] == "services" and parts[2:] == ["id"]:
        return f"remove id from [services.{parts[1]}]: the table name is the service's id"
    example = _example(info)
    annotation = _unwrap(info.annotation)
    if item and get_origin(annotation) is list:
        form = _form(get_args(annotation)[0], [])
        where = f" in {leaf}{where}"
    else:
        if get_origin(annotation) is dict:
            return f"write one table per entry, e.g. [{'.'.join(parts)}.<name>]"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return f"write it as a table: [{'.'.join(parts)}]"
        form = _form(info.annotation, info.metadata)
        where = f" for {leaf}{where}"
    if form and example:
        return f"use {form}{where}, e.g. {leaf} = {example}"
    if form:
        return f"use {form}{where}"
    if example:
        return f"e.g. {leaf} = {example}{where}"
    return None


def _form(annotation: Any, metadata: Sequence[object]) -> str | None:
    """A plain-English description of what a type accepts, or ``None``."""
    metadata = [*metadata, *_constraints(annotation)]
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(_toml(v) for v in get_args(annotation))
    if annotation is bool:
        return "true or false"
    if annotation in (int, float):
        noun = "a whole number" if annotation is int else "a number"
        low = high = ""
        for meta in metadata:
            if isinstance(meta, annotated_types.Ge):
                low = f"at least {meta.ge}"
            elif isinstance(meta, annotated_types.Gt):
                low = f"above {meta.gt}"
            elif isinstance(meta, annotated_types.Le):
                high = f"at most {meta.le}"
            elif isinstance(meta, annotated_types.Lt):
                high = f"below {meta.lt}"
        if low.startswith("at least") and high.startswith("at most"):
            return f"{noun} from {low.removeprefix('at least ')} to {high.removeprefix('at most ')}"
        bounds = " and ".join(b for b in (low, high) if b)
        return f"{noun}{' of' if low.startswith('at least') else ''} {bounds}".rstrip()
    if annotation is str:
        return "a quoted string"
    if origin is list:
        return "a list in square brackets"
    return None


def _constraints(annotation: Any) -> list[object]:
    """The constraints inside ``Annotated`` (``ge``, ``le``...), also under ``| None``."""
    found: list[object] = []
    origin = get_origin(annotation)
    if origin is Annotated:
        for arg in get_args(annotation)[1:]:
            found.extend(arg.metadata if isinstance(arg, FieldInfo) else [arg])
    elif origin in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not NoneType]
        if len(members) == 1:
            found.extend(_constraints(members[0]))
    return found


def _example(info: FieldInfo) -> str | None:
    """The field's default as TOML, if it is a simple value worth showing."""
    value = info.get_default(call_default_factory=True, validated_data={})
    if value is PydanticUndefined or value is None:
        return None
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool | int | float | str):
        return _toml(value)
    return None


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _owner_model(parts: Sequence[str]) -> type[BaseModel] | None:
    """The model of the table that ``parts`` (dotted key without the leaf) names."""
    current: Any = Settings
    for part in parts:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part)
            if info is None:
                return None
            current = info.annotation
        elif get_origin(current) is list and part.isdigit():
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` from a type."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            members = [a for a in get_args(annotation) if a is not NoneType]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _table(parts: Sequence[str]) -> str:
    """The TOML table a dotted key lives in, e.g. ``services.matomo.cookies``."""
    return ".".join(p for p in parts if not p.isdigit())


def _present(data: Any, parts: Sequence[str]) -> bool:
    """Whether the dotted key ``parts`` exists in ``data``."""
    node = data
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


# --- checks of values the app accepts ----------------------------------------------------


def _value_findings(context: _Context) -> Iterator[Finding]:
    yield from _secret_findings(context)
    yield from _secrets_in_file_findings(context)
    yield from _self_hosted_findings(context)
    settings = _valid_parts(context.data)
    if settings is None:  # cannot happen with parts validated one by one; be safe
        return
    yield from _csp_findings(settings, context)
    yield from _retention_findings(settings, context)
    yield from _cookie_findings(settings, context)
    yield from _store_findings(settings, context)


def _secret_missing(data: Mapping[str, Any]) -> bool:
    keys = data.get("secret_keys")
    return keys is None or keys == [] or keys == ""


def _secret_findings(context: _Context) -> Iterator[Finding]:
    data, in_file = context.data, context.in_file
    if _secret_missing(data):
        yield Finding(
            "error",
            "secret_keys",
            "no signing key is set (neither CONSENTGATE_SECRET_KEYS nor secret_keys in the file)",
            SECRET_FIX,
        )
        return
    if "secret_keys" in in_file:
        overridden = (
            "CONSENTGATE_SECRET_KEYS overrides them, but " if context.origin("secret_keys") else ""
        )
        yield Finding(
            "warning",
            "secret_keys",
            f"the signing keys are written in the settings file; {overridden}whoever can read "
            "the file or its version history can forge consent cookies",
            "delete secret_keys from the file and set CONSENTGATE_SECRET_KEYS in the server's "
            "environment instead; replace any key that was ever committed, with " + KEY_COMMAND,
        )
    keys = data["secret_keys"]
    if not isinstance(keys, list):
        return  # the loader reported it
    for index, key in enumerate(keys):
        # Shorter keys are refused by the model; only the count of characters is looked at,
        # the key itself is never part of a message.
        if isinstance(key, str) and len(key) >= 32 and len(set(key)) < WEAK_KEY_DISTINCT:
            yield Finding(
                "error",
                "secret_keys",
                f"signing key #{index + 1} repeats a few characters over and over, so it "
                f"can be guessed{context.origin('secret_keys')}",
                SECRET_FIX,
            )


def _secrets_in_file_findings(context: _Context) -> Iterator[Finding]:
    in_file = context.in_file
    dpo = in_file.get("dpo")
    if isinstance(dpo, Mapping) and "token" in dpo:
        yield Finding(
            "warning",
            "dpo.token",
            "the DPO token is written in the settings file; whoever can read the file or its "
            "version history can export every consent record",
            "delete token from [dpo] and set CONSENTGATE_DPO__TOKEN in the server's "
            f"environment instead; replace a token that was ever committed, with {KEY_COMMAND}",
        )
    url = in_file.get("store_url")
    if isinstance(url, str) and _password(url):
        yield Finding(
            "warning",
            "store_url",
            "the store URL in the settings file carries a password",
            "delete store_url from the file and set CONSENTGATE_STORE_URL in the server's "
            "environment instead",
        )


def _password(url: str) -> bool:
    try:
        return urlsplit(url).password is not None
    except ValueError:  # not a URL at all: the loader reports it
        return False


def _services_without_url(data: Mapping[str, Any]) -> list[str]:
    """Ids of self-hosted services (``requires_url``) whose table gives no ``url``."""
    services = data.get("services")
    if not isinstance(services, Mapping):
        return []
    found = []
    for service_id, table in services.items():
        if not isinstance(table, Mapping):
            continue
        preset = preset_data(service_id) if service_id in preset_ids() else {}
        requires = table.get("requires_url", preset.get("requires_url", False))
        if requires is True and table.get("url", preset.get("url")) is None:
            found.append(service_id)
    return found


def _self_hosted_findings(context: _Context) -> Iterator[Finding]:
    for service_id in _services_without_url(context.data):
        name = "Matomo" if service_id == "matomo" else repr(service_id)
        yield Finding(
            "error",
            f"services.{service_id}",
            f"{name} is self-hosted: without url, the base URL of your installation, "
            "consentgate cannot recognise its tags",
            f'add url = "https://matomo.example.org/" (your own address) to '
            f"[services.{service_id}]",
        )


def _valid_parts(data: Mapping[str, Any]) -> Settings | None:
    """Settings made of every value of ``data`` that is valid on its own.

    Each top-level value, each key of a section table and each service is validated alone
    (with a stand-in signing key), so the value checks run even when other parts of the file
    are wrong.
    """
    base: dict[str, Any] = {"secret_keys": [_STAND_IN_KEY], "languages": ["de"]}
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("secret_keys", "languages", "texts", "services"):
            continue  # not needed by the value checks; services are done one by one below
        info = Settings.model_fields.get(key)
        if info is None:
            continue
        section = _unwrap(info.annotation)
        if isinstance(section, type) and issubclass(section, BaseModel):
            if isinstance(value, Mapping):
                kept[key] = {k: v for k, v in value.items() if _valid({**base, key: {k: v}})}
        elif _valid({**base, key: value}):
            kept[key] = value
    services = data.get("services")
    if isinstance(services, Mapping):
        kept["services"] = {
            sid: table
            for sid, table in services.items()
            if _valid({**base, "services": {sid: table}})
        }
    try:
        return load_mapping({**base, **kept})
    except ConfigError:
        return None


def _valid(data: Mapping[str, Any]) -> bool:
    try:
        load_mapping(data)
    except ConfigError:
        return False
    return True


def _csp_findings(settings: Settings, context: _Context) -> Iterator[Finding]:
    mode = settings.csp.mode
    if mode == "off":
        return
    for service in settings.services.values():
        # The policy allows a service through its hosts and the hosts of its URL patterns
        # (consentgate.middleware.policy.CSPBuilder.sources); without either, nothing.
        # A necessary service is never blocked, so the policy has nothing to open for it.
        if service.category == "necessary" or service.hosts or service.expanded_url_patterns():
            continue
        yield Finding(
            "error",
            f"services.{service.id}.hosts",
            f'[csp] mode is "{mode}"{context.origin("csp.mode")} but service {service.id!r} '
            "has no hosts (nor url_patterns), so the Content-Security-Policy cannot allow "
            "what it loads even after consent",
            f"add the hosts it loads scripts, frames and images from to [services.{service.id}]"
            ', e.g. hosts = ["cdn.example.com", "*.example.com"]',
        )


def _retention_findings(settings: Settings, context: _Context) -> Iterator[Finding]:
    days = settings.access_log.retention_days
    key = "access_log.retention_days"
    if days > ACCESS_LOG_MAX_DAYS:
        yield Finding(
            "warning",
            key,
            f"{days} days is longer than the {ACCESS_LOG_MAX_DAYS} days after which privacy "
            "policies like the ones consentgate is made for promise to delete access logs at "
            f"the latest{context.origin(key)}",
            f"set retention_days = {ACCESS_LOG_MAX_DAYS} or less in [access_log], and name "
            "the same period in your privacy policy",
        )
    elif days < ACCESS_LOG_MIN_DAYS:
        yield Finding(
            "warning",
            key,
            f"{days} day(s) leaves little time to look into an attack or an outage before the "
            f"log is gone{context.origin(key)}",
            f"set retention_days between {ACCESS_LOG_MIN_DAYS} and {ACCESS_LOG_MAX_DAYS} in "
            "[access_log], e.g. retention_days = 30",
        )
    days = settings.ledger.retention_days
    key = "ledger.retention_days"
    if days < LEDGER_MIN_DAYS:
        yield Finding(
            "warning",
            key,
            f"{days} days is less than a year, but consent records are your proof of consent "
            "(Art. 7(1) GDPR) and must outlive the 3-year limitation period (§ 195 BGB)"
            f"{context.origin(key)}",
            "set retention_days = 1095 (the default) in [ledger]",
        )
    elif days > LEDGER_MAX_DAYS:
        yield Finding(
            "warning",
            key,
            f"{days} days keeps consent records for more than 10 years, longer than any proof "
            f"needs (storage limitation, Art. 5(1)(e) GDPR){context.origin(key)}",
            f"set retention_days = 1095 (the default) in [ledger], at most {LEDGER_MAX_DAYS}",
        )


def _cookie_findings(settings: Settings, context: _Context) -> Iterator[Finding]:
    days = settings.cookie.lifetime_days
    key = "cookie.lifetime_days"
    if days > COOKIE_MAX_DAYS:
        yield Finding(
            "warning",
            key,
            f"{days} days is longer than 13 months, the longest European practice accepts for "
            "remembering a consent decision (CNIL: 13 months; DSK: a proportionate period)"
            f"{context.origin(key)}",
            "set lifetime_days = 365 or less in [cookie]",
        )


def _store_findings(settings: Settings, context: _Context) -> Iterator[Finding]:
    url = settings.store_url
    if not url.startswith("sqlite:///"):
        return
    path = url.removeprefix("sqlite:///")
    if path.startswith("/"):
        return
    # A relative path is resolved against the server's working directory: started from
    # elsewhere (systemd's default is /), the app writes a new, empty ledger there.
    written = "store_url" in context.data
    where = "" if written else "store_url is not set, so the default is used: "
    yield Finding(
        "warning",
        "store_url",
        f"{where}the SQLite ledger path {path!r} is relative, so where consent records are "
        f"kept depends on the directory the server is started in{context.origin('store_url')}",
        "use an absolute path (four slashes), e.g. store_url = "
        '"sqlite:////var/lib/consentgate/consentgate.db"',
    )


# --- secrets never leave ------------------------------------------------------------------


def _secret_values(data: Mapping[str, Any]) -> list[str]:
    """Every secret value in ``data``: signing keys, the DPO token, a store URL's password."""
    values: list[str] = []
    keys = data.get("secret_keys")
    if isinstance(keys, str):
        values.append(keys)
    elif isinstance(keys, list):
        values.extend(k for k in keys if isinstance(k, str))
    dpo = data.get("dpo")
    if isinstance(dpo, str):
        values.append(dpo)
    elif isinstance(dpo, Mapping) and isinstance(dpo.get("token"), str):
        values.append(dpo["token"])
    url = data.get("store_url")
    if isinstance(url, str):
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            values.append(password)
    return sorted((v for v in values if len(v) >= _REDACT_MIN), key=len, reverse=True)


def _redacted(findings: list[Finding], secrets: Sequence[str]) -> list[Finding]:
    """``findings`` with any secret value replaced by ``***`` (the loader never echoes them;
    this guards against a value in an unexpected place, e.g. ``dpo = "<token>"``)."""

    def clean(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return [Finding(f.severity, clean(f.key), clean(f.message), clean(f.fix)) for f in findings]
