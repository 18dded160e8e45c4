"""Store fixtures: every store test runs on SQLite and on MariaDB.

MariaDB comes from ``BAOLIFE_TEST_MYSQL_URL`` (scripts/test starts the server
and sets it). Without it the MariaDB cases are skipped, except under
``CI=true``, where they fail: there the MariaDB run is mandatory. The tests
use the URL's database, dropping only the tables our migrations create, before
and after each test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from baolife.db import open_store
from baolife.db.store import Store
from tests.db.mysql_admin import reset_database

BACKENDS = ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)]


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A MariaDB database with none of our tables (dropped again after the test)."""
    url = os.environ.get("BAOLIFE_TEST_MYSQL_URL", "")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and BAOLIFE_TEST_MYSQL_URL is not set: the MariaDB tests are mandatory")
        pytest.skip("BAOLIFE_TEST_MYSQL_URL is not set (scripts/test starts MariaDB and sets it)")
    reset_database(url)
    yield url
    reset_database(url)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    url: str = request.getfixturevalue("mysql_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A migrated store on an empty database."""
    async with open_store(store_url, pool_size=4) as opened:
        await opened.migrate()
        yield opened
