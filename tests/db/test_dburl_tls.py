"""The database URL's TLS options (baolife/dburl.py) and the TLS context
built from them (baolife/db/mysql.py). Against a real server:
tests/cluster/test_tls.py."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from baolife.config import ConfigError, Settings
from baolife.db.mysql import tls_context
from baolife.dburl import MysqlOptions

BASE = "mysql://bao:pw@db:3306/baolife"


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("parsing only checks that the file exists\n")
    return path


def test_without_options_there_is_no_tls() -> None:
    options = MysqlOptions.from_url(BASE)
    assert options.ssl_mode == "disabled" and options.ssl_ca == ""
    assert tls_context(options) is None


def test_a_ca_turns_tls_on_verifying_the_host(ca: Path) -> None:
    options = MysqlOptions.from_url(f"{BASE}?ssl_ca={ca}&timeout=2")
    assert (options.ssl_mode, options.ssl_ca, options.timeout) == ("verify_identity", str(ca), 2.0)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("ssl_mode=sometimes", "ssl_mode must be one of"),
        ("ssl_ca=/no/such/ca.pem", "ssl_ca: no such file"),
        ("ssl_mode=disabled&ssl_ca={ca}", "need TLS"),
        ("ssl_ca={ca}&ssl_cert={ca}", "ssl_cert and ssl_key: give both"),
        ("ssl_cipher=x", "unknown option 'ssl_cipher'"),
    ],
)
def test_bad_tls_options_are_refused_with_the_reason(ca: Path, query: str, reason: str) -> None:
    url = f"{BASE}?{query.format(ca=ca)}"
    with pytest.raises(ValueError, match=reason):
        MysqlOptions.from_url(url)
    # At start-up: one line naming the setting, the password not echoed.
    with pytest.raises(ConfigError, match=reason) as caught:
        Settings.defaults(db_url=url)
    assert ":pw@" not in str(caught.value)


def test_the_modes_make_the_contexts_they_say() -> None:
    # Without ssl_ca the verifying modes trust the system's CAs.
    identity = tls_context(MysqlOptions.from_url(f"{BASE}?ssl_mode=verify_identity"))
    assert identity is not None and identity.check_hostname and identity.verify_mode == ssl.CERT_REQUIRED
    ca_only = tls_context(MysqlOptions.from_url(f"{BASE}?ssl_mode=verify_ca"))
    assert ca_only is not None and not ca_only.check_hostname and ca_only.verify_mode == ssl.CERT_REQUIRED
    required = tls_context(MysqlOptions.from_url(f"{BASE}?ssl_mode=required"))
    assert required is not None and required.verify_mode == ssl.CERT_NONE
    assert required.minimum_version == ssl.TLSVersion.TLSv1_2
