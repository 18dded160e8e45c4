"""TLS to the database (issue 13): the cluster's MariaDB on the ``db`` host
has a certificate from a throwaway CA made by scripts/cluster, and a user
that may log in only over TLS (``REQUIRE SSL``). The worker runs on it with
``?ssl_ca=``; a CA that did not sign the server's certificate, a host name
the certificate does not name, or a plain-text login are refused with a
clear error."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.cluster.harness import Cluster, cluster_for_module

DB = "10.213.7.10"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with cluster_for_module(1, tls=True) as made:
        yield made


def migrate(cluster: Cluster, host: str, url: str) -> subprocess.CompletedProcess[str]:
    """``baolife migrate`` with ``url`` from inside host ``host``'s namespace."""
    env = cluster._worker_env("w1") | {"BAOLIFE_DB_URL": url}
    args = ["ip", "netns", "exec", f"bl-{host}", str(cluster._baolife("migrate")[0]), "migrate"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


def ssl_accepts(cluster: Cluster) -> int:
    return int(cluster.sql("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'").split()[1])


def test_the_worker_plays_over_tls(cluster: Cluster) -> None:
    assert cluster.ready("w1")
    assert "ssl_ca=" in cluster.db_url() and "baolife_tls" in cluster.db_url()
    # The worker's user may not log in without TLS, and the server counts TLS handshakes.
    assert "REQUIRE SSL" in cluster.sql("SHOW CREATE USER 'baolife_tls'@'%'")
    before = ssl_accepts(cluster)
    done = migrate(cluster, "w1", cluster.db_url())
    assert done.returncode == 0, done.stdout + done.stderr
    assert ssl_accepts(cluster) > before


def test_a_certificate_from_another_ca_is_refused(cluster: Cluster) -> None:
    other = cluster.dir / "tls" / "other-ca.pem"
    done = migrate(cluster, "w1", cluster.db_url(ca=other))
    assert done.returncode != 0
    assert "certificate verify failed" in (done.stdout + done.stderr)
    # Encrypted but unverified, when asked for: then it connects.
    done = migrate(cluster, "w1", cluster.db_url(ca=other) + "&ssl_mode=required")
    assert done.returncode == 0, done.stdout + done.stderr


def test_verify_identity_checks_the_host_name(cluster: Cluster) -> None:
    # On the db host itself, MariaDB at 127.0.0.1: an address its certificate does not name.
    local = cluster.db_url().replace(f"@{DB}:3306/", "@127.0.0.1:3306/")
    done = migrate(cluster, "db", local)
    assert done.returncode != 0
    assert "127.0.0.1" in (done.stdout + done.stderr)
    done = migrate(cluster, "db", local + "&ssl_mode=verify_ca")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_plain_text_login_of_the_tls_user_is_refused(cluster: Cluster) -> None:
    plain = cluster.db_url(tls=False).replace("mysql://baolife:", "mysql://baolife_tls:")
    done = migrate(cluster, "w1", plain)
    assert done.returncode != 0
    assert "Access denied" in (done.stdout + done.stderr)
