"""Reading a settings file: TOML, vendor presets merged in, ``CONSENTGATE_*`` overrides on top."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from consentgate.config.presets import preset_data, preset_ids, texts_data

if TYPE_CHECKING:
    from consentgate.config.models import Settings

ENV_PREFIX = "CONSENTGATE_"
#: Variables with the prefix that are not settings keys.
ENV_IGNORED = frozenset({"CONSENTGATE_CONFIG"})
#: Keys whose values never appear in an error message.
SECRET_KEYS = frozenset({"secret_keys"})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a settings file: where, and what to do about it."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(ValueError):
    """The settings are invalid; ``problems`` lists each one with its key and the fix."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: invalid consentgate settings:\n{lines}")


def load_file(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file at ``path``, apply ``CONSENTGATE_*`` variables, validate."""
    source = os.fspath(path)
    try:
        raw = tomllib.loads(Path(source).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            source, [Problem("", "file not found; pass --config or set CONSENTGATE_CONFIG")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [Problem("", f"cannot read the file: {exc}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [Problem("", f"not valid TOML: {exc}")]) from None
    env = os.environ if environ is None else environ
    overrides = _env_overrides(env)
    for keys, value, _name in overrides:
        _set_path(raw, keys, value)
    env_names = {".".join(keys): name for keys, _value, name in overrides}
    return load_mapping(raw, source=source, env_names=env_names)


def load_mapping(
    raw: Mapping[str, Any],
    *,
    source: str = "<settings>",
    env_names: Mapping[str, str] | None = None,
) -> Settings:
    """Validate already-parsed settings, merging presets and default texts in."""
    from consentgate.config.models import Settings

    data = dict(raw)
    problems: list[Problem] = []
    services = data.get("services", {})
    if not isinstance(services, Mapping):
        problems.append(Problem("services", "must be a table of [services.<id>] tables"))
        services = {}
    merged_services: dict[str, Any] = {}
    for service_id, table in services.items():
        if not isinstance(table, Mapping):
            problems.append(
                Problem(f"services.{service_id}", "must be a table, e.g. [services.matomo]")
            )
            continue
        if "id" in table and table["id"] != service_id:
            problems.append(
                Problem(f"services.{service_id}.id", "must equal the table name or be left out")
            )
            continue
        base = preset_data(service_id) if service_id in preset_ids() else {}
        merged = _merge(base, table)
        merged["id"] = service_id
        merged_services[service_id] = merged
    data["services"] = merged_services

    texts = data.get("texts", {})
    if not isinstance(texts, Mapping):
        problems.append(Problem("texts", "must be a table of [texts.<language>] tables"))
        texts = {}
    shipped = texts_data()
    data["texts"] = {
        lang: _merge(shipped.get(lang, {}), table) if isinstance(table, Mapping) else table
        for lang, table in {**{key: {} for key in shipped}, **texts}.items()
    }
    if problems:
        raise ConfigError(source, problems)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc, dict(env_names or {}))) from None


#: Settings whose values must not appear in an error message.
_NEVER_ECHOED = (["secret_keys"], ["store_url"], ["dpo", "token"])


def _problems(exc: ValidationError, env_names: dict[str, str]) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc)
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing" and key == "secret_keys":
            message = (
                "no signing key; set CONSENTGATE_SECRET_KEYS (comma-separated, newest "
                "first) or secret_keys = [...] in the file"
            )
        elif error["type"] == "missing" and loc[:1] == ["services"] and len(loc) == 3:
            message = f"required for a service that is not a preset (presets: {preset_ids()!r})"
        elif error["type"] == "extra_forbidden":
            message = "unknown key; check the spelling against the documented settings"
        elif (
            # Secrets (and URLs that may carry a password) are never echoed.
            # Neither at or under a secret's key, nor at a table holding one (``dpo = "..."``
            # puts the token where the [dpo] table belongs).
            not any(
                loc[: len(secret)] == secret or secret[: len(loc)] == loc
                for secret in _NEVER_ECHOED
            )
            and "(got " not in message
            and isinstance(error["input"], str | int | float | bool)
        ):
            message = f"{message} (got {error['input']!r})"
        for prefix, name in env_names.items():
            if key == prefix or key.startswith(prefix + "."):
                message = f"{message} [from environment variable {name}]"
                break
        problems.append(Problem(key, message))
    return problems


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[list[str], Any, str]]:
    """Turn ``CONSENTGATE_A__B=value`` into ``(["a", "b"], value, name)`` entries."""
    found = []
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in ENV_IGNORED:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        if keys == ["secret_keys"]:
            parsed: Any = [k.strip() for k in value.split(",") if k.strip()]
        else:
            parsed = _parse_env_value(value)
        found.append((keys, parsed, name))
    return found


def _parse_env_value(value: str) -> Any:
    """Read a variable as a TOML value (``3``, ``true``, ``["de"]``), else as a string."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _set_path(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``base``: tables merge key by key, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
