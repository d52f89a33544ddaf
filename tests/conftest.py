"""Shared fixtures: settings with every preset, a real SQLite ledger in a temp folder."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from consentgate.config import Settings, preset_ids
from consentgate.consent.sqlite import SQLiteStore

# tests.redis_servers needs the repository root on sys.path (--import-mode=importlib leaves it
# off; see tests/example_site).
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.redis_servers import RedisCluster, RedisServer  # noqa: E402

KEY = "k" * 40

SettingsData = Callable[..., dict[str, Any]]


def _settings_data(**overrides: Any) -> dict[str, Any]:
    services: dict[str, Any] = {
        service_id: ({"url": "https://stats.example.de/"} if service_id == "matomo" else {})
        for service_id in preset_ids()
    }
    data: dict[str, Any] = {"secret_keys": [KEY], "services": services}
    data.update(overrides)
    return data


@pytest.fixture
def settings_data() -> SettingsData:
    """Return a factory of settings dicts (shaped like the TOML file) enabling every preset."""
    return _settings_data


@pytest.fixture
def necessary_service() -> dict[str, Any]:
    """Return the settings table of a custom service that needs no consent."""
    return {
        "name": "Sitzung",
        "category": "necessary",
        "description": {"de": "Hält die Anmeldung.", "en": "Keeps you signed in."},
        "provider": {"name": "Stadtwerke", "address": "Hauptstraße 1", "country": "DE"},
        "privacy_policy_url": "/datenschutz",
    }


@pytest.fixture
def settings() -> Settings:
    return Settings.from_mapping(_settings_data())


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    ledger = SQLiteStore(tmp_path / "ledger.db")
    yield ledger
    await ledger.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a loopback port (AOF, fsync always), shut down at session end."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A real three-master Redis Cluster on loopback ports, shut down at session end."""
    with RedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster
