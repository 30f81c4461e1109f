"""What a frontier run writes beside its spec files: ``frontier.md`` (the table) and
``frontier.html`` (accuracy against parameters, with the published nets and the write-up's six
experiments). The figure's data are computed apart from drawing them."""

from __future__ import annotations

import html
import math
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mnist_search.catalog.published import PublishedNet, epoch_cap, published_for
from mnist_search.files import write_atomic
from mnist_search.frontier.run import FrontierOutcome, FrontierRow
from mnist_search.frontier.target import TargetOutcome
from mnist_search.redact import masked
from mnist_search.search.config import OWN


def machine() -> str:
    """The machine in words: the GPU when one trained the nets, else the CPU's cores."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()}-core CPU ({cpu}), torch {torch.__version__}"


def _hms(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def markdown(outcome: FrontierOutcome, command: str) -> str:
    cfg = outcome.config
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    lines = [
        "# Frontier: the best net found at each budget",
        "",
        f"Dataset: **{outcome.dataset}**. "
        f"Made by `{command}` on {machine()}, {when}; this run's wall time "
        f"{_hms(outcome.wall_seconds)} (each row's own time below includes earlier runs of "
        "the same command it resumed).",
        "",
        "Each budget was searched by `mnist-search optimize`'s search in its own study "
        f"(`{cfg.study_for(0).rsplit('-', 1)[0]}-<budget>`), then its "
        + ("finalist" if cfg.final.top == 1 else f"{cfg.final.top} finalists")
        + (
            ", and the best net it started from (a shipped one or the smaller budget's choice, "
            "fitted) if not among them, were"
            if cfg.final.incumbent
            else (" was" if cfg.final.top == 1 else " were")
        )
        + " retrained from scratch"
        + ("" if cfg.final.augment == OWN else f", augmentation {cfg.final.augment},")
        + f" with {cfg.final.seeds} seeds for as many epochs as the time allowed, up "
        "to the cap shown; the net with the best mean validation accuracy was chosen. Test "
        "accuracy is reported, never used. `train --spec <spec file> --seeds "
        f"{cfg.final.seeds}` retrains a row.",
        "",
        "| budget | net | params | epochs (cap) | val mean ± std | test mean ± std | "
        "where the net came from | trials | wall time | spec file |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in outcome.rows:
        lines.append(
            f"| {r.budget:,} | `{r.architecture.replace('|', chr(92) + '|')}` | {r.n_params:,} | "
            f"{r.epochs} ({epoch_cap(r.budget)}) | {r.val_mean:.2f} ± {r.val_std:.2f} | "
            f"**{r.test_mean:.2f} ± {r.test_std:.2f}** | {r.origin} | {r.trials} | "
            f"{_hms(r.wall_seconds)} | `{Path(r.spec_file).name}` |"
        )
    for b, why in sorted(outcome.missing.items()):
        lines.append(f"| {b:,} | — | | | | | not chosen: {why} | | | |")
    lines += fresh_lines(outcome.rows)
    if outcome.target is not None:
        lines += ["", target_line(outcome.target)]
    lines += [
        "",
        "Trials count those that trained to at least their first report (not those over "
        "budget or cut by the time limit at once). "
        "`best sampled` is the best one-epoch validation of a net the search drew itself:",
        "",
    ]
    for r in outcome.rows:
        if r.best_sampled_val is not None:
            lines.append(f"- {r.budget:,}: best sampled {r.best_sampled_val:.2f}% validation")
    published = published_for(outcome.dataset)
    if not published:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "Published small nets, for comparison (mostly single runs whose best epoch was picked "
        "on the test set):",
        "",
        *published_table(published),
    ]
    return "\n".join(lines) + "\n"


def published_table(published: tuple[PublishedNet, ...]) -> list[str]:
    """The published nets as a markdown table, each with its source and how it was measured."""
    lines = ["| params | test | epochs | source |", "|---|---|---|---|"]
    for p in published:
        note = f" ({p.note})" if p.note else ""
        lines.append(
            f"| {p.n_params:,} | {p.test_accuracy:.2f}% | {p.epochs or '—'} | {p.source}{note} |"
        )
    return lines


def fresh_lines(rows: list[FrontierRow]) -> list[str]:
    """The rows retrained with fresh seeds (``--confirm``), beside the run's own figures."""
    fresh = [r for r in rows if r.fresh_seeds is not None]
    if not fresh:
        return []
    lines = [
        "",
        "Confirmed with fresh seeds (`--confirm`): each row's spec file trained again, same "
        "recipe, length and data split, with seeds the run never used. A row is above a goal "
        "only if both seed sets' test means are.",
        "",
        "| budget | seeds | val mean ± std | test mean ± std | the run's test mean |",
        "|---|---|---|---|---|",
    ]
    for r in fresh:
        seeds = ", ".join(map(str, r.fresh_seeds or []))
        lines.append(
            f"| {r.budget:,} | {seeds} | {r.fresh_val_mean:.2f} ± {r.fresh_val_std:.2f} | "
            f"**{r.fresh_test_mean:.2f} ± {r.fresh_test_std:.2f}** | {r.test_mean:.2f} |"
        )
    return lines


def target_line(t: TargetOutcome, markdown: bool = True) -> str:
    """What ``--target-accuracy`` found, in one sentence (for frontier.md, or plain)."""
    c = t.chosen
    if c is None:
        best = "none finished" if t.best_val is None else f"the best reached {t.best_val:.2f}%"
        line = (
            f"**Target {t.target:g}% validation: not reached** by any of the {t.pool} retrained "
            f"finalists ({best})."
        )
        return line if markdown else line.replace("**", "")
    v, s = c.val_stat, c.test_stat
    name = t.spec_file.name if t.spec_file else "-"
    arch = c.architecture.replace("|", chr(92) + "|") if markdown else c.architecture
    line = (
        f"**Target {t.target:g}% validation**: the smallest of the {t.pool} retrained finalists "
        f"that reaches it is `{arch}`, {c.n_params:,} parameters, "
        f"{c.epochs} epoch{'s' * (c.epochs != 1)}, from the "
        f"{t.budget:,} budget's final stage ({c.origin}): val {v.mean:.2f} ± {v.std:.2f}, test "
        f"**{s.mean:.2f} ± {s.std:.2f}**, spec file `{name}`."
    )
    return line if markdown else line.replace("**", "").replace("`", "")


def figure_data(rows: list[FrontierRow], dataset: str = "mnist") -> dict[str, Any]:
    """The points the figure draws: the chosen nets, the published ones, the write-up's six
    (those two on MNIST only: that is what they were measured on)."""
    from mnist_search.catalog.experiments import documented_experiments

    return {
        "chosen": [
            {
                "budget": r.budget,
                "n_params": r.n_params,
                "test": r.test_mean,
                "std": r.test_std,
                "label": f"{r.budget:,}: {r.n_params:,} p., {r.epochs} ep.",
            }
            for r in rows
        ],
        "published": [
            {"n_params": p.n_params, "test": p.test_accuracy, "label": p.source, "note": p.note}
            for p in published_for(dataset)
        ],
        "documented": [
            {
                "n_params": e.true_params,  # the write-up's Exp1 count is wrong; this is built
                "test": e.documented["test_accuracy"],
                "label": f"Exp{e.id}",
            }
            for e in documented_experiments()
            if e.documented.get("test_accuracy") is not None and dataset == "mnist"
        ],
        "budgets": sorted(r.budget for r in rows),
    }


def _error(acc: float) -> float:
    return 100.0 - acc


def _log_range(values: list[float], pad: float = 1.6) -> list[float]:
    return [math.log10(min(values) / pad), math.log10(max(values) * pad)]


def figure(data: dict[str, Any], dataset: str = "mnist"):
    """Test error (100 − accuracy, log axis, as MNIST results are drawn) against parameters (log
    axis). The chosen nets and the published ones share the main panel; the write-up's six
    experiments, an order of magnitude worse, have a panel of their own so they do not squeeze
    it. Labels are short and placed above and below in turn; the published nets are named in the
    legend, one entry per source, and each point's details are in its hover text."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    docs = data["documented"]
    panels = 2 if docs else 1
    fig = make_subplots(
        rows=1,
        cols=panels,
        column_widths=[0.72, 0.28] if panels == 2 else [1.0],
        horizontal_spacing=0.08,
        subplot_titles=(
            ["chosen nets and published small nets", "the write-up's six experiments"]
            if panels == 2
            else None
        ),
    )
    ch = data["chosen"]
    fig.add_trace(
        go.Scatter(
            x=[c["n_params"] for c in ch],
            y=[_error(c["test"]) for c in ch],
            error_y={"type": "data", "array": [c["std"] for c in ch], "visible": True},
            mode="lines+markers+text",
            name="chosen nets: test error, mean ± std over seeds",
            text=[f"{c['budget']:,}" for c in ch],
            hovertext=[c["label"] for c in ch],
            textposition=["bottom center" if i % 2 else "top center" for i in range(len(ch))],
            marker={"size": 11, "symbol": "star"},
        ),
        row=1,
        col=1,
    )
    symbols = ("diamond", "square", "triangle-up", "circle", "pentagon", "hexagon")
    pub = data["published"]
    sources = sorted({p["label"] for p in pub})
    for i, source in enumerate(sources):
        mine = [p for p in pub if p["label"] == source]
        fig.add_trace(
            go.Scatter(
                x=[p["n_params"] for p in mine],
                y=[_error(p["test"]) for p in mine],
                mode="markers",
                name=f"published: {source}",
                hovertext=[f"{p['n_params']:,} p., {p['test']:.2f}% {p['note']}" for p in mine],
                marker={"size": 9, "symbol": symbols[i % len(symbols)]},
            ),
            row=1,
            col=1,
        )
    for b in data["budgets"]:
        fig.add_vline(x=b, line_dash="dot", line_color="grey", row=1, col=1)
    main_x = [c["n_params"] for c in ch] + [p["n_params"] for p in pub] + data["budgets"]
    main_y = [_error(c["test"]) - c["std"] for c in ch] + [_error(p["test"]) for p in pub]
    main_y += [_error(c["test"]) + c["std"] for c in ch]
    fig.update_xaxes(
        type="log", title="trainable parameters (log)", range=_log_range(main_x), row=1, col=1
    )
    fig.update_yaxes(
        type="log",
        title="test error (%), log",
        range=_log_range([max(y, 0.05) for y in main_y], 1.3),
        row=1,
        col=1,
    )
    if docs:
        # Exp5 and Exp6 have the same parameter count: their labels go on opposite sides.
        order = sorted(range(len(docs)), key=lambda i: (docs[i]["n_params"], docs[i]["test"]))
        where = {i: ("bottom center" if k % 2 else "top center") for k, i in enumerate(order)}
        fig.add_trace(
            go.Scatter(
                x=[d["n_params"] for d in docs],
                y=[_error(d["test"]) for d in docs],
                mode="markers+text",
                name="the write-up's experiments (documented test figure)",
                text=[d["label"] for d in docs],
                textposition=[where[i] for i in range(len(docs))],
                marker={"size": 9, "symbol": "x"},
            ),
            row=1,
            col=2,
        )
        fig.update_xaxes(
            type="log",
            title="parameters (log)",
            range=_log_range([d["n_params"] for d in docs]),
            row=1,
            col=2,
        )
        fig.update_yaxes(
            type="log",
            title="test error (%), log",
            range=_log_range([_error(d["test"]) for d in docs], 1.4),
            row=1,
            col=2,
        )
    fig.update_layout(
        title=f"Test error against parameters: the frontier ({dataset})",
        height=700,
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def render_html(outcome: FrontierOutcome, command: str) -> str:
    import plotly.offline

    data = figure_data(outcome.rows, outcome.dataset)
    div = figure(data, outcome.dataset).to_html(
        full_html=False, include_plotlyjs=False, div_id="plot-frontier"
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>mnist-search frontier</title>
<script>{plotly.offline.get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}</style></head>
<body><h1>Frontier: {html.escape(outcome.dataset)}</h1><p>Made by <code>{html.escape(command)}</code> on
{html.escape(machine())}. Nets chosen on validation accuracy; test accuracy shown.</p>
<div class="fig" id="fig-frontier">{div}</div></body></html>"""


def write_outputs(outcome: FrontierOutcome, command: str) -> list[Path]:
    """frontier.md and frontier.html; ``command`` (the command line that made the run) is
    written with any storage password in it masked."""
    command = masked(command, outcome.config.search.storage)
    out = Path(outcome.config.out)
    paths = [out / "frontier.md", out / "frontier.html"]
    write_atomic(paths[0], markdown(outcome, command))
    write_atomic(paths[1], render_html(outcome, command))
    return paths
