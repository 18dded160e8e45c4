"""Fixtures of the admin API tests: a server with an operator's and a
viewer's token, and a small HTTP client that speaks to its /admin/api/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from baolife.admin.tokens import token_line
from baolife.app import App
from baolife.config import Settings
from tests.helpers import running_app

# Tokens of the tests only (their hashes are what the server is configured with).
OPERATOR_TOKEN = "bla_operator-token-for-tests-0123456789abcdef"  # noqa: S105
VIEWER_TOKEN = "bla_viewer-token-for-tests-0123456789abcdef"  # noqa: S105
SECOND_OPERATOR_TOKEN = "bla_second-operator-token-for-tests-0123456789"  # noqa: S105


def admin_settings(settings: Settings, **changes: Any) -> Settings:
    tokens = ",".join(
        [
            token_line("ops", "operator", OPERATOR_TOKEN),
            token_line("eve", "viewer", VIEWER_TOKEN),
            token_line("ops2", "operator", SECOND_OPERATOR_TOKEN),
        ]
    )
    return settings.replace(admin_tokens=tokens, admin_rate=1000.0, admin_burst=1000, **changes)


class AdminClient:
    """Requests to a running server's admin API with one token."""

    def __init__(self, port: int, token: str | None) -> None:
        self.base = f"http://127.0.0.1:{port}/admin/api/"
        self.token = token

    def headers(self) -> dict[str, str]:
        return {} if self.token is None else {"authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.request(
                method, self.base + path, json=body, params=params or None, headers=self.headers()
            )

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.call("GET", path, **params)

    async def post(self, path: str, body: Any = None) -> httpx.Response:
        return await self.call("POST", path, body if body is not None else {})


@pytest.fixture
async def admin_app(settings: Settings) -> AsyncIterator[App]:
    async with running_app(admin_settings(settings)) as app:
        yield app


@pytest.fixture
def ops(admin_app: App) -> AdminClient:
    assert admin_app.http_port is not None
    return AdminClient(admin_app.http_port, OPERATOR_TOKEN)


@pytest.fixture
def viewer(admin_app: App) -> AdminClient:
    assert admin_app.http_port is not None
    return AdminClient(admin_app.http_port, VIEWER_TOKEN)


# The store fixtures of tests/db (SQLite, and MariaDB with BAOLIFE_TEST_MYSQL_URL).
from tests.db.conftest import mysql_url, store, store_url  # noqa: E402, F401
