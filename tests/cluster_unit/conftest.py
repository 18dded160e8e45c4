"""The store fixtures of tests/db (every store test on SQLite and MariaDB)."""

from tests.db.conftest import mysql_url, store, store_url  # noqa: F401 - fixtures
