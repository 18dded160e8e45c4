"""Settings: defaults, TOML file, environment over file, one-line errors."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from baolife.config import SETTINGS_DOC, ConfigError, Settings, load
from baolife.tick.engine import World


def test_defaults_match_the_documented_embedded_setup() -> None:
    s = load({})
    assert s.ws_bind == ("127.0.0.1", 8765)
    assert s.http_bind == ("127.0.0.1", 8080)
    assert s.db_url == "sqlite:///var/baolife.db"
    assert (s.tick_hz, s.day_ticks, s.save_interval) == (10.0, 10, 5.0)
    assert s.ai_api_key == ""


def test_the_fast_forward_budget_is_one_number() -> None:
    # The server passes the setting; tools and tests build a World without
    # settings and get its default: the two must be the same number.
    engine_default = inspect.signature(World.__init__).parameters["fast_forward_budget"].default
    assert load({}).fast_forward_budget == engine_default
    assert load({"BAOLIFE_FAST_FORWARD_BUDGET": "0"}).fast_forward_budget == 0


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('tick_hz = 20\nday_ticks = 5\nws_bind = "0.0.0.0:9000"\n')
    s = load({"BAOLIFE_TICK_HZ": "25"}, str(path))
    assert s.tick_hz == 25.0 and s.day_ticks == 5 and s.ws_bind == ("0.0.0.0", 9000)


def test_openai_key_is_a_fallback_for_the_ai_key() -> None:
    assert load({"OPENAI_API_KEY": "k1"}).ai_api_key == "k1"
    assert load({"OPENAI_API_KEY": "k1", "BAOLIFE_AI_API_KEY": "k2"}).ai_api_key == "k2"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"BAOLIFE_TICK_HZ": "fast"}, "BAOLIFE_TICK_HZ='fast': must be a number"),
        ({"BAOLIFE_TICK_HZ": "0"}, "BAOLIFE_TICK_HZ='0': must be between 1 and 100"),
        ({"BAOLIFE_DAY_TICKS": "2.5"}, "BAOLIFE_DAY_TICKS='2.5': must be an integer"),
        ({"BAOLIFE_WS_BIND": "8765"}, "BAOLIFE_WS_BIND='8765': must be HOST:PORT"),
        ({"BAOLIFE_HTTP_BIND": "127.0.0.1:99999"}, "port must be between 0 and 65535"),
        ({"BAOLIFE_DB_URL": "postgres://x/y"}, "BAOLIFE_DB_URL='postgres://x/y': scheme must be sqlite:// or mysql://"),
        ({"BAOLIFE_SAVE_INTERVAL": "-1"}, "BAOLIFE_SAVE_INTERVAL='-1': must be between"),
        ({"BAOLIFE_LOG_FORMAT": "xml"}, "must be one of auto, json, console"),
        ({"BAOLIFE_TLS_CERT": "/x.pem"}, "set both or neither"),
    ],
)
def test_bad_values_name_the_setting_and_the_reason(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(env)
    assert says in str(info.value)
    assert "\n" not in str(info.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("tick_hz = [1\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load({}, str(bad))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("tikc_hz = 5\n")
    with pytest.raises(ConfigError, match="unknown.toml: tikc_hz: unknown setting"):
        load({}, str(unknown))
    with pytest.raises(ConfigError, match="missing.toml"):
        load({}, str(tmp_path / "missing.toml"))
    typed = tmp_path / "typed.toml"
    typed.write_text("day_ticks = true\n")
    with pytest.raises(ConfigError, match="typed.toml: day_ticks"):
        load({}, str(typed))


def test_every_setting_is_documented_and_buildable() -> None:
    names = [name for name, _, _ in SETTINGS_DOC]
    assert len(names) == len(set(names)) == len(Settings.__attrs_attrs__)
    assert all(doc for _, _, doc in SETTINGS_DOC)


def test_serve_with_a_bad_setting_exits_2_with_one_line() -> None:
    env = {**os.environ, "BAOLIFE_TICK_HZ": "nope"}
    proc = subprocess.run(
        [sys.executable, "-m", "baolife", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["baolife: BAOLIFE_TICK_HZ='nope': must be a number"]
