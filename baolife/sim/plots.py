"""PNG charts of a balance report. Needs matplotlib (``pip install
'baolife[sim]'``), imported only when charts are asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import BalanceReport

__all__ = ["PlotsUnavailable", "require_matplotlib", "write_plots"]


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def require_matplotlib() -> Any:
    """The pyplot module (on the file-only Agg backend), or PlotsUnavailable."""
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable("charts need matplotlib: pip install 'baolife[sim]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(report: BalanceReport, folder: Path | str) -> list[Path]:
    """Write the report's distributions as PNG files into ``folder`` (created
    if missing); returns the paths written."""
    plt = require_matplotlib()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    n = max(1, len(report.lives))
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)

    spans = report.lifespans()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.hist(spans, bins=range(0, int(max(spans, default=0)) + 2), color="#4a7bb7")
    median = report.to_dict()["lifespan_years"]["median"]
    ax.axvline(median, color="#c0392b", label=f"median {median:.1f}")
    ax.set(title=f"Lifespan of {n:,} lives", xlabel="age at death (game years)", ylabel="lives")
    ax.legend()
    save(fig, "lifespan.png")

    money = sorted(life.money for life in report.lives)
    low, high = money[len(money) // 100], money[-1 - len(money) // 100] if money else 0
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.hist([min(max(m, low), high) for m in money], bins=50, color="#27ae60")
    ax.set(title="Money at death (1st-99th percentile)", xlabel="money", ylabel="lives")
    save(fig, "money.png")

    def bars(counts: dict[str, float], title: str, name: str, xlabel: str) -> None:
        items = list(counts.items())[:30]
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(items) + 1.2))
        ax.barh([k for k, _ in items][::-1], [v * 100 for _, v in items][::-1], color="#8e44ad")
        ax.set(title=title, xlabel=xlabel)
        save(fig, name)

    d = report.to_dict()
    bars(d["education"], "Education at death", "education.png", "% of lives")
    bars(d["jobs_share_of_working_years"], "Jobs (top 30)", "jobs.png", "% of working-age years")

    events = sorted(report.random_events + report.followup_events, key=lambda e: report.event_counts.get(e, 0))
    fig, ax = plt.subplots(figsize=(9, 4))
    per_1000 = [report.event_counts.get(e, 0) * 1000 / n for e in events]
    ax.bar(range(len(events)), per_1000, color=["#c0392b" if v == 0 else "#f39c12" for v in per_1000])
    ax.set_yscale("symlog", linthresh=1)
    ax.set(title="Events per 1,000 lives, rarest first (red: never)", xlabel="events", ylabel="times per 1,000 lives")
    save(fig, "events.png")
    return written
