"""docs/OPERATIONS.md, the alert rules and the dashboard stay true to the
code: every setting with its default, every metric the server exports (and
only those, or ones marked as coming from a component's statistics()), and
no rule or panel on a metric that does not exist."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import attrs
import httpx
import pytest
import trio
import yaml
from helpers import running_app
from prometheus_client.parser import text_string_to_metric_families

from baolife.config import SETTINGS_DOC, Settings
from baolife.logs import LogWriter
from baolife.metrics import optional_families
from baolife.metrics.ai import AI_OPTIONAL
from baolife.metrics.store import STORE_OPTIONAL

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "OPERATIONS.md").read_text()
NAME = re.compile(r"\b((?:baolife|process)_[a-z_]+)\b")


def base(name: str) -> str:
    """A sample or documented name as its family name (no _total, _bucket...)."""
    return re.sub(r"_(total|bucket|sum|count)$", "", name)


def documented() -> tuple[set[str], set[str]]:
    """Metric families in the doc's table: (all of them, those marked ¹)."""
    everything, optional = set(), set()
    for line in DOC.splitlines():
        if not line.startswith(("| `baolife_", "| `process_")):
            continue
        first = line.split("|")[1]
        names = {base(n) for n in re.findall(r"`([a-z_]+)`", first)}
        everything |= names
        if line.rstrip().endswith("¹ |"):
            optional |= names
    return everything, optional


def test_every_setting_is_documented_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `(BAOLIFE_[A-Z0-9_]+)` \| (.*?) \|", DOC, re.MULTILINE))
    expected = {name: (f"`{default}`" if default else "(empty)") for name, default, _ in SETTINGS_DOC}
    assert rows == expected


async def test_every_exported_metric_is_documented_and_back(settings: Settings) -> None:
    writer = LogWriter(io.BytesIO())  # as the CLI passes it: its counts are exported too
    with trio.fail_after(30):
        async with running_app(settings, log_writer=writer) as app:
            async with httpx.AsyncClient() as http:
                body = (await http.get(f"http://127.0.0.1:{app.http_port}/metrics")).text
    writer.close()
    exported = {base(f.name) for f in text_string_to_metric_families(body) if not f.name.endswith("_created")}
    everything, optional = documented()
    assert exported - everything == set(), "exported but not in docs/OPERATIONS.md"
    missing = everything - optional - exported
    assert missing == set(), f"documented but not exported: {missing}"
    # The ¹ families are exactly the ones read from components' statistics() fields.
    assert optional == {base(name) for _, name, _, _ in STORE_OPTIONAL + AI_OPTIONAL}


def test_optional_families_appear_once_a_component_reports_them() -> None:
    @attrs.frozen
    class AiStatistics:  # what the AI layer's statistics() will carry
        cache_hits: int
        breaker_open: bool
        calls: dict[str, int]

    families = {f.name: f for f in optional_families(AiStatistics(5, True, {"ok": 3, "error": 1}), AI_OPTIONAL)}
    assert set(families) == {"baolife_ai_cache_hits", "baolife_ai_breaker_open", "baolife_ai_calls"}
    assert families["baolife_ai_cache_hits"].samples[0].value == 5
    breaker = families["baolife_ai_breaker_open"]
    assert breaker.type == "gauge" and breaker.samples[0].value == 1
    assert {s.labels["outcome"]: s.value for s in families["baolife_ai_calls"].samples} == {"ok": 3, "error": 1}


def test_alert_rules_are_complete_and_use_documented_metrics() -> None:
    everything, _ = documented()
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    assert len(rules) >= 10
    for rule in rules:
        assert rule["alert"].startswith("BaoLife") and rule["labels"]["severity"] in ("page", "warning")
        assert rule["annotations"]["summary"]
        used = {base(n) for n in NAME.findall(rule["expr"])}
        assert used <= everything, (rule["alert"], used - everything)
        assert used or rule["expr"].startswith("up{"), rule["alert"]
    assert "BaoLifeWorkerDown" in {r["alert"] for r in rules}


@pytest.mark.skipif(
    shutil.which("promtool") is None and os.environ.get("CI") != "true",
    reason="promtool is not installed (scripts/test installs Debian's prometheus package)",
)
def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    """promtool parses every rule (PromQL included), and the unit tests in
    tests/data/alerts_test.yml see the alerts fire, and stay quiet, on
    synthetic series."""
    rules = ROOT / "deploy" / "prometheus" / "alerts.yml"
    checked = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", str(ROOT / "tests" / "data" / "alerts_test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_dashboard_panels_use_documented_metrics() -> None:
    everything, _ = documented()
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "baolife.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = {base(n) for n in NAME.findall(target["expr"])}
            assert names and names <= everything, (panel["title"], names - everything)
            used |= names
    # The list: tick time, players, frames, ops, errors, queues, store, flushes, AI.
    for name in (
        "baolife_tick_duration_seconds", "baolife_players_online", "baolife_frames_sent", "baolife_ops_sent",
        "baolife_errors_sent", "baolife_outbound_queued_frames", "baolife_store_seconds", "baolife_flush_failures",
        "baolife_ai_cache_hits", "baolife_rate_limited", "baolife_players_dirty",
    ):  # fmt: skip
        assert name in used, name
