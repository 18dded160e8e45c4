"""BAOLIFE_ADMIN_TOKENS: what it accepts, what it refuses (one line naming
the setting), and how a request's token is checked; the worker panel's
percentiles from its own histogram."""

from __future__ import annotations

from pathlib import Path

import pytest

from baolife.admin.tokens import TokenTable, digest, new_token, token_line
from baolife.admin.views import _quantile
from baolife.config import ConfigError, Settings


def test_entries_inline_and_from_a_file(tmp_path: Path) -> None:
    a, b = new_token(), new_token()
    assert a != b and a.startswith("bla_") and len(a) > 40
    inline = Settings.defaults(admin_tokens=f"{token_line('ann', 'operator', a)}, {token_line('bo', 'viewer', b)}")
    assert [(t.name, t.role) for t in inline.admin_tokens] == [("ann", "operator"), ("bo", "viewer")]
    assert inline.admin_tokens[0].sha256 == digest(a) and a not in repr(inline)
    path = tmp_path / "tokens"
    path.write_text(
        f"# the night shift\n{token_line('ann', 'operator', a)}  # pager\n\n{token_line('bo', 'viewer', b)}\n"
    )
    assert Settings.defaults(admin_tokens=f"@{path}").admin_tokens == inline.admin_tokens
    assert Settings.defaults().admin_tokens == ()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ann:operator", "NAME:ROLE:SHA256HEX"),
        ("ann:root:" + "a" * 64, "role must be viewer or operator"),
        ("ann:viewer:" + "a" * 63, "64 hex digits"),
        ("ann:viewer:" + "g" * 64, "64 hex digits"),
        (f"ann:viewer:{'a' * 64},ann:operator:{'b' * 64}", "named twice"),
        (":viewer:" + "a" * 64, "NAME:ROLE:SHA256HEX"),
        ("@/nonexistent/tokens", "cannot read"),
    ],
)
def test_bad_entries_are_one_line_naming_the_setting(value: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.defaults(admin_tokens=value)
    assert "BAOLIFE_ADMIN_TOKENS" in str(raised.value) and says in str(raised.value)


def test_checking_a_request_token() -> None:
    token = new_token()
    table = TokenTable(Settings.defaults(admin_tokens=token_line("ann", "viewer", token)).admin_tokens)
    assert table and not TokenTable(())
    found = table.check(f"Bearer {token}")
    assert found is not None and found.name == "ann"
    assert table.check(f"bearer   {token}  ") == found  # the scheme is case-blind, blanks trimmed
    for bad in (None, "", "Bearer", f"Basic {token}", f"Bearer {token}x", f"Bearer {digest(token)}", token):
        assert table.check(bad) is None, bad


def test_quantiles_from_cumulative_buckets() -> None:
    buckets = {0.001: 50.0, 0.002: 98.0, 0.005: 99.0, 0.01: 100.0, float("inf"): 100.0}
    assert _quantile(buckets, 0.5) == 1.0 and _quantile(buckets, 0.99) == 5.0
    assert _quantile({0.001: 0.0, float("inf"): 0.0}, 0.5) == 0.0
    assert _quantile({0.001: 0.0, float("inf"): 3.0}, 0.5) == 1.0  # over every bound: the largest finite one
