"""``GET {prefix}/declaration``: the cookie declaration as an embeddable fragment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.responses import PlainTextResponse

from consentgate.config import Settings
from consentgate.consent.sqlite import SQLiteStore
from consentgate.middleware import ConsentMiddleware
from consentgate.widgets import render_declaration
from tests.conftest import SettingsData

URL = "/_consent/declaration"


@pytest.fixture
def settings(settings_data: SettingsData, tmp_path: Path) -> Settings:
    return Settings.from_mapping(
        settings_data(revision=4, ledger={"spool_directory": str(tmp_path / "spool")})
    )


@pytest.fixture
async def client(settings: Settings, store: SQLiteStore) -> AsyncIterator[httpx.AsyncClient]:
    app = ConsentMiddleware(PlainTextResponse("app"), settings=settings, store=store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    await app.ledger.stop()


@pytest.mark.parametrize(
    ("params", "headers", "language", "fmt", "media_type"),
    [
        pytest.param({}, {}, "de", "html", "text/html", id="default"),
        pytest.param({}, {"accept-language": "en-GB,en"}, "en", "html", "text/html", id="browser"),
        pytest.param({"lang": "en", "format": "md"}, {}, "en", "md", "text/markdown", id="md"),
        pytest.param(
            {"lang": "de"}, {"accept-language": "en"}, "de", "html", "text/html", id="explicit"
        ),
    ],
)
async def test_serves_the_generated_text_with_revision_and_fingerprint(
    client: httpx.AsyncClient,
    settings: Settings,
    params: dict[str, str],
    headers: dict[str, str],
    language: str,
    fmt: str,
    media_type: str,
) -> None:
    expected = render_declaration(settings, language, fmt)  # type: ignore[arg-type]
    response = await client.get(URL, params=params, headers=headers)
    assert response.status_code == 200
    assert response.text == expected.text
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["content-language"] == language
    assert response.headers["x-consentgate-revision"] == "4"
    assert response.headers["x-consentgate-fingerprint"] == expected.fingerprint
    assert "Accept-Language" in response.headers["vary"]


async def test_etag_answers_304(client: httpx.AsyncClient) -> None:
    first = await client.get(URL)
    again = await client.get(URL, headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    md = await client.get(URL, params={"format": "md"})
    assert md.headers["etag"] != first.headers["etag"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"lang": "fr"}, "lang", id="language"),
        pytest.param({"format": "pdf"}, "format", id="format"),
    ],
)
async def test_bad_parameters_name_the_field(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await client.get(URL, params=params)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert repr(params[field]) in response.json()["error"]


async def test_needs_no_token_and_refuses_posts(client: httpx.AsyncClient) -> None:
    assert (await client.get(URL)).status_code == 200  # public: it is part of the policy
    assert (await client.post(URL)).status_code == 405
