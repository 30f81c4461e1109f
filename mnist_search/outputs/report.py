"""A self-contained HTML report of a study: the figures and tables drawn from what
``report_data.py`` computes."""

from __future__ import annotations

import html
import math
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna

from mnist_search.files import check_writable, write_atomic
from mnist_search.outputs.report_data import final_study_of, report_data
from mnist_search.replay.summary import ReplayRow
from mnist_search.search.records import TrialRecord
from mnist_search.stats import pct
from mnist_search.training.protocol import Protocol


def figure_accuracy(data: dict[str, Any]):
    import plotly.graph_objects as go

    pts, front, docs = data["points"], data["front"], data["documented"]
    fig = go.Figure()
    hover = [f"trial {p['trial']}<br>{p['architecture']}" for p in pts]
    fig.add_scatter(
        x=[p["n_params"] for p in pts],
        y=[p["val"] for p in pts],
        mode="markers",
        name="validation accuracy",
        text=hover,
        marker={"size": 8},
    )
    fig.add_scatter(
        x=[p["n_params"] for p in pts],
        y=[p["test"] for p in pts],
        mode="markers",
        name="test accuracy (reported, not used)",
        text=hover,
        marker={"size": 6, "symbol": "diamond-open"},
    )
    fig.add_scatter(
        x=[p["n_params"] for p in front],
        y=[p["val"] for p in front],
        mode="lines+markers",
        name="Pareto front (validation)",
        line={"shape": "hv", "width": 2},
        marker={"size": 11, "symbol": "star"},
    )
    fig.add_scatter(
        x=[d["n_params"] for d in docs],
        y=[d["documented_test"] for d in docs],
        mode="markers+text",
        name="write-up: documented test accuracy",
        text=[d["label"] for d in docs],
        textposition="top center",
        marker={"size": 10, "symbol": "x"},
    )
    rep = [d for d in docs if d["measured_test"] is not None]
    if rep:
        fig.add_scatter(
            x=[d["n_params"] for d in rep],
            y=[d["measured_test"] for d in rep],
            mode="markers+text",
            name="write-up nets replayed: test mean ± std",
            error_y={"type": "data", "array": [d["measured_std"] for d in rep]},
            text=[f"{d['label']} replayed" for d in rep],
            hovertext=[f"{d['label']}, {d['seeds']} seed(s)" for d in rep],
            textposition="bottom center",
            marker={"size": 9, "symbol": "square"},
        )
    xs = [p["n_params"] for p in pts] + [d["n_params"] for d in docs]
    if data["budget"]:
        xs.append(data["budget"])
        fig.add_vline(x=data["budget"], line_dash="dash", line_color="red")
        # The label sits left of the line, inside the plot. On a log axis an annotation's x is
        # the exponent (plotly's rule for log axes).
        fig.add_annotation(
            x=math.log10(data["budget"]),
            y=1,
            yref="paper",
            xanchor="right",
            yanchor="top",
            showarrow=False,
            text=f"budget {data['budget']:,}",
            font={"color": "red"},
        )
    # A log axis from half the smallest to twice the largest count: every label stays inside.
    fig.update_xaxes(
        type="log",
        title="trainable parameters (log scale)",
        range=[math.log10(min(xs) / 2), math.log10(max(xs) * 2)],
    )
    fig.update_yaxes(title="accuracy (%)")
    fig.update_layout(title="Accuracy against parameter count", height=560)
    return fig


def figure_curves(data: dict[str, Any]):
    import plotly.graph_objects as go

    fig = go.Figure()
    colours = {"COMPLETE": "rgba(31,119,180,0.8)", "PRUNED": "rgba(150,150,150,0.5)"}
    shown = set()
    for c in data["curves"]:
        fig.add_scatter(
            x=c["steps"],
            y=c["values"],
            mode="lines+markers",
            line={"color": colours[c["state"]]},
            name=c["state"].lower(),
            legendgroup=c["state"],
            showlegend=c["state"] not in shown,
            text=f"trial {c['trial']}",
        )
        shown.add(c["state"])
    fig.update_xaxes(title="report step (validation checks)")
    fig.update_yaxes(title="validation accuracy (%)")
    fig.update_layout(title="Learning curves: complete vs pruned trials", height=450)
    return fig


def _table(rows: list[TrialRecord]) -> str:
    def cell(v) -> str:
        return f"<td>{html.escape(str(v))}</td>"

    head = (
        "<tr><th>trial</th><th>params</th><th>val acc</th><th>test acc</th><th>seconds</th>"
        "<th>batch</th><th>optimizer</th><th>architecture</th></tr>"
    )
    body = "".join(
        "<tr>"
        + "".join(
            cell(v)
            for v in (
                r.number,
                f"{r.n_params or 0:,}",
                pct(r.val_accuracy),
                pct(r.test_accuracy),
                f"{r.seconds or 0:.1f}",
                r.batch_size,
                (r.training or {}).get("optimizer"),
            )
        )
        + f"<td><code>{html.escape(str(r.architecture))}</code></td></tr>"
        for r in rows
    )
    return f"<table>{head}{body}</table>"


def _final_table(final: dict[str, Any] | None) -> str:
    if final is None:
        return "<p>No final stage has retrained this search's candidates yet.</p>"
    head = (
        "<tr><th>trial</th><th>params</th><th>epochs</th><th>seeds</th><th>val mean ± std</th>"
        "<th>test mean ± std</th><th>chosen</th><th>origin</th><th>architecture</th></tr>"
    )
    rows = []
    for c in final["candidates"]:
        cells = (
            c["trial"],
            f"{c['n_params']:,}",
            c["epochs"],
            c["seeds"],
            f"{c['val_mean']:.2f} ± {c['val_std']:.2f}%",
            f"{c['test_mean']:.2f} ± {c['test_std']:.2f}%",
            "chosen" if c["trial"] == final["chosen"] else "",
            c["origin"],
        )
        rows.append(
            '<tr class="final-row">'
            + "".join(f"<td>{html.escape(str(v))}</td>" for v in cells)
            + f"<td><code>{html.escape(str(c['architecture']))}</code></td></tr>"
        )
    return (
        f"<p>Study <code>{html.escape(final['study'])}</code>: the best candidates retrained "
        f"from scratch with {final['seeds']} seed(s), chosen on mean validation accuracy.</p>"
        f'<table id="final">{head}{"".join(rows)}</table>'
    )


def render_html(study: optuna.Study, data: dict[str, Any]) -> str:
    import plotly.offline
    from optuna.visualization import plot_optimization_history, plot_param_importances

    figures = [
        ("accuracy", figure_accuracy(data)),
        ("history", plot_optimization_history(study, target_name="validation accuracy")),
    ]
    notes = []
    try:
        with warnings.catch_warnings():
            # With few trials per parameter value the estimate is rough; the figure still shows.
            warnings.simplefilter("ignore", UserWarning)
            imp = plot_param_importances(study)
        # One bar per parameter, each labelled: tall enough that no tick label is dropped.
        bars = len(imp.data[0].y) if imp.data else 0
        imp.update_layout(height=max(420, 60 + 26 * bars), margin={"l": 160})
        imp.update_yaxes(automargin=True, dtick=1, tickfont={"size": 12})
        figures.append(("importances", imp))
    except (ValueError, RuntimeError) as e:
        notes.append(f"parameter importances not drawn: {e}")
    figures.append(("curves", figure_curves(data)))
    parts = [
        f'<div class="fig" id="fig-{name}">'
        + fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{name}")
        + "</div>"
        for name, fig in figures
    ]
    c = data["counts"]
    protocol = Protocol.from_dict(data["protocol"]).flags() if data["protocol"] else "-"
    budget = f"{data['budget']:,}" if data["budget"] else "none"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>mnist-search: {html.escape(data["study"])}</title>
<script>{plotly.offline.get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:last-child{{text-align:left}}
.fig{{margin:1em 0}}</style></head>
<body><h1>Study {html.escape(data["study"])}</h1>
<p>Dataset <b>{html.escape(Protocol.from_dict(data["protocol"]).dataset)}</b> · Budget {budget} parameters · {c["complete"]} complete, {c["pruned"]} pruned
({c["over_budget"]} over budget), {c["failed"]} failed · protocol
<code>{html.escape(protocol)}</code> · written {when}</p>
<p>Candidates are selected on validation accuracy; test accuracy is shown for reference only.</p>
{"".join(parts)}
<h2>Final stage</h2>{_final_table(data.get("final"))}
<h2>Top trials of the search</h2>{_table(data["top"])}
{"".join(f"<p><i>{html.escape(n)}</i></p>" for n in notes)}
</body></html>"""


def write_report(
    study: optuna.Study,
    out: Path,
    replay_rows: list[ReplayRow] | None = None,
    final: optuna.Study | None = None,
) -> dict[str, Any]:
    data = report_data(study, replay_rows, final=final)
    write_atomic(out, render_html(study, data))  # never leave a half-written report
    return data


def report_study(
    study_name: str,
    storage_url: str | None,
    out: Path,
    replay_study: str = "documented-experiments",
    replay_storage: str | None = None,
) -> dict[str, Any]:
    """Write the report of a study that must exist, with the replayed experiments placed on its
    plot when their study exists; returns the figures' data."""
    import logging

    from mnist_search.replay.summary import summarize
    from mnist_search.search.storage import (
        default_storage,
        load_existing,
        masked,
        missing_sqlite_file,
        open_storage,
    )

    check_writable("out", out, folder=False)
    study = load_existing(study_name, storage_url or default_storage())
    rows = None
    rurl = replay_storage or storage_url or default_storage()
    if replay_storage or missing_sqlite_file(rurl) is None:
        try:
            rows = summarize(optuna.load_study(study_name=replay_study, storage=open_storage(rurl)))
        except KeyError:
            logging.getLogger("mnist_search").info(
                "no replay study %r in %s: documented values only", replay_study, masked(rurl)
            )
    return write_report(study, out, rows, final_study_of(study))
