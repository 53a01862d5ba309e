"""One self-contained HTML report of a synthetic table, and its numbers as JSON.

The report puts pictures where a person would rather look than read (marginals,
correlation heat maps, the distance-to-closest-record histogram against its holdout
baseline, the ALM trajectories, the privacy-utility frontier) and tables where
numbers matter (the privacy audit beside its baselines, constraint status, utility
and fidelity). Figures are PNGs drawn with matplotlib's Agg canvas and inlined as
base64, so the file needs no other asset and no JavaScript. The same numbers are
written beside it as JSON. Both files are written atomically and only after every
figure has been drawn, so a failure leaves no file behind, not even a partial one.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from psygentab_jax._src import io as pg_io
from psygentab_jax._src.evaluate import (
    MISSING,
    NUMERIC_KINDS,
    _plain,
    category_labels,
    correlation_matrix,
    numeric_values,
    resolve_schema,
    split_columns,
)
from psygentab_jax._src.schema import Schema

REAL_COLOR = "#3b6ea5"
SYNTHETIC_COLOR = "#d9822b"
MAX_LEVELS = 12  # bars per categorical marginal; the rest are pooled as "other"
HISTOGRAM_BINS = 30

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
.met { color: #1a7f37; } .unmet { color: #b42318; font-weight: bold; }
.note { color: #555; font-size: 0.9em; }
"""


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _plot_text(text) -> str:
    """Text for a matplotlib label: ``$`` would start math mode, so escape it."""
    return str(text).replace("$", r"\$")


def _short(text, width: int = 14) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _number(value) -> str:
    """A value as the report shows it: 4 significant digits, ``–`` when undefined."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "–" if not math.isfinite(value) else format(float(value), ".4g")
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence], *, raw=()) -> str:
    """An HTML table; cells are escaped unless their column index is in ``raw``."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell if i in raw else _e(_number(cell))
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _png(figure: Figure) -> str:
    """The figure as an inline ``<img>`` element (a base64 PNG)."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=90)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(figure.get_label())}">'


def _figure(
    label: str, width: float, height: float, layout: str | None = "constrained"
) -> Figure:
    figure = Figure(figsize=(width, height), layout=layout)
    figure.set_label(label)
    return figure


def _finite(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def _histogram_bins(*samples: np.ndarray) -> np.ndarray:
    pooled = np.concatenate(samples)
    low, high = (pooled.min(), pooled.max()) if len(pooled) else (0.0, 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, HISTOGRAM_BINS + 1)


# --------------------------------------------------------------------------- #
# Figures
# --------------------------------------------------------------------------- #


def _overlaid_histograms(axes, samples, *, medians: bool = False) -> None:
    """Density histograms of ``(values, color, label)`` samples on shared bins."""
    bins = _histogram_bins(*(values for values, _, _ in samples))
    for values, color, name in samples:
        if len(values):
            axes.hist(
                values,
                bins=bins,
                density=True,
                histtype="stepfilled",
                alpha=0.5,
                color=color,
                label=name,
            )
            if medians:
                axes.axvline(np.median(values), color=color, linestyle="--")


def _marginal_numeric(axes, real: np.ndarray, synthetic: np.ndarray) -> None:
    real, synthetic = _finite(real), _finite(synthetic)
    if not len(real) + len(synthetic):
        axes.text(0.5, 0.5, "no values", ha="center", transform=axes.transAxes)
        return
    _overlaid_histograms(
        axes, ((real, REAL_COLOR, "real"), (synthetic, SYNTHETIC_COLOR, "synthetic"))
    )
    axes.set_yticks([])


def _marginal_categorical(axes, real: np.ndarray, synthetic: np.ndarray) -> None:
    p = pd.Series(real).value_counts(normalize=True)
    q = pd.Series(synthetic).value_counts(normalize=True)
    levels = list(p.index) + [level for level in q.index if level not in p.index]
    p, q = p.reindex(levels, fill_value=0.0), q.reindex(levels, fill_value=0.0)
    if len(levels) > MAX_LEVELS:
        levels = levels[: MAX_LEVELS - 1]
        pooled = [1.0 - p[levels].sum(), 1.0 - q[levels].sum()]
        p = pd.concat([p[levels], pd.Series({"other": pooled[0]})])
        q = pd.concat([q[levels], pd.Series({"other": pooled[1]})])
        levels = levels + ["other"]
    position = np.arange(len(levels))
    axes.bar(position - 0.2, p.to_numpy(), 0.4, color=REAL_COLOR, label="real")
    axes.bar(
        position + 0.2, q.to_numpy(), 0.4, color=SYNTHETIC_COLOR, label="synthetic"
    )
    axes.set_xticks(position)
    axes.set_xticklabels(
        [_plot_text(_short(level, 10)) for level in levels], rotation=60, fontsize=7
    )


def marginals_figure(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    columns: Sequence[str],
) -> Figure:
    """Real against synthetic marginals of ``columns``, four to a row.

    Numeric columns get overlaid density histograms of their non-missing values,
    with the missing rates in the title; categorical columns get paired bars of
    level frequencies (missing as a level of its own).

    Args:
      real: real rows.
      synthetic: synthetic rows.
      schema: the table's schema (it gives each column's kind).
      columns: the columns to draw.

    Returns:
      The figure.
    """
    n_cols = min(4, len(columns))
    n_rows = math.ceil(len(columns) / n_cols)
    # A fixed layout: solving a constrained one for two dozen panels costs seconds.
    figure = _figure("marginals", 3.3 * n_cols, 2.7 * n_rows, layout=None)
    grid = figure.subplots(n_rows, n_cols, squeeze=False)
    figure.subplots_adjust(
        left=0.05,
        right=0.98,
        bottom=0.1 / n_rows,
        top=1 - 0.1 / n_rows,
        wspace=0.25,
        hspace=0.9,
    )
    for axes, name in zip(grid.ravel(), columns, strict=False):
        kind = schema[name].kind
        if kind in NUMERIC_KINDS:
            a = numeric_values(real[name], kind)
            b = numeric_values(synthetic[name], kind)
            _marginal_numeric(axes, a, b)
            missing = f" (missing {np.isnan(a).mean():.0%} | {np.isnan(b).mean():.0%})"
            title = _short(name, 22) + (missing if np.isnan(a).any() else "")
        else:
            _marginal_categorical(
                axes, category_labels(real[name]), category_labels(synthetic[name])
            )
            title = _short(name, 22)
        axes.set_title(_plot_text(title), fontsize=9)
    for axes in grid.ravel()[len(columns) :]:
        axes.set_axis_off()
    grid.ravel()[0].legend(fontsize=7)
    return figure


def correlation_figure(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, columns: list[str]
) -> Figure:
    """Pearson correlation heat maps: real | synthetic | synthetic − real.

    Args:
      real: real rows.
      synthetic: synthetic rows.
      schema: the table's schema.
      columns: the numeric columns (two or more).

    Returns:
      The figure.
    """

    def matrix(frame):
        values = {c: numeric_values(frame[c], schema[c].kind) for c in columns}
        return correlation_matrix(pd.DataFrame(values)).to_numpy()

    real_corr, synthetic_corr = matrix(real), matrix(synthetic)
    size = max(3.5, 0.28 * len(columns) + 2.0)
    figure = _figure("correlations", 3 * size, size)
    panels = figure.subplots(1, 3)
    titles = ("real", "synthetic", "synthetic − real")
    matrices = (real_corr, synthetic_corr, synthetic_corr - real_corr)
    for axes, title, values in zip(panels, titles, matrices, strict=True):
        image = axes.imshow(values, vmin=-1, vmax=1, cmap="RdBu_r")
        axes.set_title(title)
        ticks = np.arange(len(columns))
        labels = [_plot_text(_short(c)) for c in columns] if len(columns) <= 30 else []
        axes.set_xticks(ticks if labels else [])
        axes.set_yticks(ticks if labels else [])
        if labels:
            axes.set_xticklabels(labels, rotation=90, fontsize=7)
            axes.set_yticklabels(labels, fontsize=7)
    figure.colorbar(image, ax=list(panels), shrink=0.8)
    return figure


def dcr_figure(synthetic: np.ndarray, holdout: np.ndarray) -> Figure:
    """Distances to the closest training record: synthetic rows against holdout rows.

    Args:
      synthetic: each synthetic row's distance to its nearest training row.
      holdout: each holdout row's distance to its nearest training row (the level
        a fresh patient reaches).

    Returns:
      The figure, with each sample's median marked.
    """
    synthetic, holdout = _finite(synthetic), _finite(holdout)
    figure = _figure("dcr", 7.0, 3.6)
    axes = figure.subplots()
    _overlaid_histograms(
        axes,
        (
            (holdout, REAL_COLOR, "holdout (real, unseen)"),
            (synthetic, SYNTHETIC_COLOR, "synthetic"),
        ),
        medians=True,
    )
    axes.set_xlabel("distance to the closest training record")
    axes.set_ylabel("density")
    axes.legend()
    return figure


def _check_history(history: Mapping) -> np.ndarray:
    epoch = np.asarray(history.get("epoch", []), dtype=np.float64)
    if epoch.ndim != 1 or len(epoch) == 0:
        raise ValueError("history['epoch'] must be a non-empty list of epochs")
    series = {"utility": history.get("utility")}
    for group in ("violation", "multiplier", "penalty"):
        for name, values in (history.get(group) or {}).items():
            series[f"{group}[{name}]"] = values
    for key, values in series.items():
        if values is not None and len(values) != len(epoch):
            raise ValueError(
                f"history {key} has {len(values)} values for {len(epoch)} epochs"
            )
    return epoch


def history_figure(history: Mapping) -> Figure:
    """ALM trajectories: utility, and per constraint its violation, multiplier and
    penalty, one panel each, against the epoch.

    Args:
      history: ``{"epoch": [...], "utility": [...], "violation": {name: [...]},
        "multiplier": {name: [...]}, "penalty": {name: [...]}}``; any part but
        ``"epoch"`` may be absent.

    Returns:
      The figure.

    Raises:
      ValueError: a series' length differs from the number of epochs.
    """
    epoch = _check_history(history)
    panels = [
        g for g in ("utility", "violation", "multiplier", "penalty") if history.get(g)
    ]
    if not panels:
        raise ValueError("history holds no utility, violation, multiplier or penalty")
    figure = _figure("history", 3.6 * len(panels), 3.2)
    grid = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, group in zip(grid, panels, strict=True):
        lines = history[group]
        lines = lines if isinstance(lines, Mapping) else {"utility": lines}
        for name, values in lines.items():
            axes.plot(
                epoch,
                np.asarray(values, dtype=np.float64),
                marker=".",
                label=_plot_text(name),
            )
        pooled = _finite([v for values in lines.values() for v in values])
        # Penalties can grow by orders of magnitude; a log axis keeps them legible.
        if len(pooled) and pooled.min() > 0 and pooled.max() / pooled.min() > 100:
            axes.set_yscale("log")
        if group == "violation":
            axes.axhline(0.0, color="#888", linewidth=0.8)
        axes.set_title(group)
        axes.set_xlabel("epoch")
        if isinstance(history[group], Mapping):
            axes.legend(fontsize=7)
    return figure


def _frontier_parts(frontier: Mapping) -> tuple[list[Mapping], list[Mapping]]:
    points = list(frontier.get("points", []))
    ours = [p for p in points if p.get("threshold") is not None]
    ours.sort(key=lambda p: p["threshold"])
    others = [p for p in points if p.get("threshold") is None]
    return ours, others


def frontier_figure(frontier: Mapping) -> Figure:
    """The privacy-utility frontier: our runs as a curve, other synthesizers as points.

    Args:
      frontier: ``{"points": [{"label", "privacy", "utility", "threshold"}, ...],
        "x_label", "y_label", "curve_label"}``. Points with a ``threshold`` are
        our runs, one per privacy threshold, joined in threshold order; points
        without one are other synthesizers, drawn apart with their labels.

    Returns:
      The figure.
    """
    ours, others = _frontier_parts(frontier)
    figure = _figure("frontier", 6.5, 4.5)
    axes = figure.subplots()
    if ours:
        x = [p["privacy"] for p in ours]
        y = [p["utility"] for p in ours]
        label = frontier.get("curve_label", "psygentab-jax")
        axes.plot(x, y, marker="o", color=SYNTHETIC_COLOR, label=_plot_text(label))
        for p in ours:
            text = _plot_text(f"≥{_number(p['threshold'])}")
            axes.annotate(
                text,
                (p["privacy"], p["utility"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
    for p in others:
        axes.scatter([p["privacy"]], [p["utility"]], color=REAL_COLOR, marker="s")
        axes.annotate(
            _plot_text(p.get("label", "")),
            (p["privacy"], p["utility"]),
            fontsize=8,
            xytext=(4, -10),
            textcoords="offset points",
        )
    axes.set_xlabel(_plot_text(frontier.get("x_label", "privacy")))
    axes.set_ylabel(_plot_text(frontier.get("y_label", "utility")))
    if ours:
        axes.legend()
    return figure


# --------------------------------------------------------------------------- #
# Sections
# --------------------------------------------------------------------------- #


def _dcr_summary(dcr: Mapping) -> dict:
    summary = {}
    for name in ("synthetic", "holdout"):
        values = _finite(dcr.get(name, []))
        if len(values) == 0:
            summary[name] = {"n": 0}
            continue
        p5, p50, p95 = np.percentile(values, [5, 50, 95])
        summary[name] = {
            "n": len(values),
            "mean": float(values.mean()),
            "p5": float(p5),
            "median": float(p50),
            "p95": float(p95),
        }
    return summary


def _constraints_section(constraints: Sequence[Mapping]) -> str:
    rows = []
    for c in constraints:
        met = c.get("met")
        status = {True: '<span class="met">met</span>'}.get(
            met, '<span class="unmet">not met</span>' if met is False else "–"
        )
        rows.append([c.get("name"), c.get("threshold"), c.get("value"), status])
    header = ["constraint", "threshold", "value", "status"]
    return "<h2>Constraints</h2>" + _table(header, rows, raw=(3,))


def _privacy_section(privacy: Mapping) -> str:
    rows = []
    for metric, entry in privacy.items():
        if isinstance(entry, Mapping):
            rows.append([metric, entry.get("value"), entry.get("baseline")])
        else:
            rows.append([metric, entry, None])
    header = ["metric", "synthetic", "holdout baseline"]
    note = (
        '<p class="note">Each figure is beside the value that real patients the '
        "synthesizer never saw reach.</p>"
    )
    return "<h2>Privacy audit</h2>" + note + _table(header, rows)


def _dcr_section(dcr: Mapping, summary: Mapping) -> str:
    rows = []
    for name in ("synthetic", "holdout"):
        s = summary[name]
        rows.append([name, s["n"], s.get("p5"), s.get("median"), s.get("p95")])
    table = _table(["rows", "n", "5th pct", "median", "95th pct"], rows)
    image = _png(dcr_figure(dcr.get("synthetic", []), dcr.get("holdout", [])))
    return "<h2>Distance to the closest training record</h2>" + image + table


def _utility_section(utility: Mapping) -> str:
    metrics = ("roc_auc", "balanced_accuracy", "minority_recall")
    rows = []
    for scheme in ("trtr", "tstr", "trts"):
        for model, scores in (utility.get(scheme) or {}).items():
            rows.append([scheme.upper(), model] + [scores.get(m) for m in metrics])
    parts = ["<h2>Utility</h2>"]
    if "target" in utility:
        minority = utility.get("minority_class")
        parts.append(
            f'<p class="note">Target {_e(utility["target"])}; minority class '
            f"{_e(minority)}. TRTR: train real, test holdout; TSTR: train synthetic, "
            "test holdout; TRTS: train real, test synthetic.</p>"
        )
    parts.append(_table(["scheme", "model", *metrics], rows))
    ratio = utility.get("ratio") or {}
    if ratio:
        rows = [
            [m, r.get("roc_auc"), r.get("minority_recall")] for m, r in ratio.items()
        ]
        header = ["TSTR / TRTR", "roc_auc", "minority_recall"]
        parts.append(_table(header, rows))
    missing = {k: v for k, v in (utility.get("missing_classes") or {}).items() if v}
    for scheme, classes in missing.items():
        listed = ", ".join(str(c) for c in classes)
        parts.append(
            f'<p class="note">{_e(scheme.upper())}: the training set lacks classes '
            f"{_e(listed)}.</p>"
        )
    return "".join(parts)


def _fidelity_section(fidelity: Mapping, baseline: Mapping | None) -> str:
    summary = (
        "ks_mean",
        "missing_gap_mean",
        "tv_mean",
        "correlation_gap",
        "contingency_gap",
        "detection_auc",
    )
    header = ["metric", "synthetic vs train"]
    if baseline:
        header.append("holdout vs train")
    rows = []
    for key in summary:
        row = [key, fidelity.get(key)]
        rows.append(row + ([baseline.get(key)] if baseline else []))
    parts = ["<h2>Fidelity</h2>", _table(header, rows)]

    columns = fidelity.get("columns") or {}
    if columns:
        rows = []
        for name, entry in columns.items():
            statistic = "ks" if "ks" in entry else "tv"
            row = [name, entry.get("kind"), statistic.upper(), entry.get(statistic)]
            row.append(entry.get("missing_gap"))
            if baseline:
                row.append(
                    ((baseline.get("columns") or {}).get(name) or {}).get(statistic)
                )
            rows.append(row)
        header = ["column", "kind", "statistic", "synthetic", "missing gap"]
        parts.append(_table(header + (["holdout"] if baseline else []), rows))
    return "".join(parts)


def _figures_section(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, max_columns: int
) -> str:
    numeric, categorical = split_columns(schema, real)
    chosen = set(numeric + categorical)
    columns = [c for c in schema.names if c in chosen]
    parts = []
    if columns:
        shown = columns[:max_columns]
        parts.append("<h2>Marginals: real and synthetic</h2>")
        if len(shown) < len(columns):
            parts.append(
                f'<p class="note">The first {len(shown)} of {len(columns)} columns.</p>'
            )
        parts.append(_png(marginals_figure(real, synthetic, schema, shown)))
    if len(numeric) >= 2:
        parts.append("<h2>Correlations</h2>")
        parts.append(_png(correlation_figure(real, synthetic, schema, numeric)))
    return "".join(parts)


def _frontier_section(frontier: Mapping) -> str:
    ours, others = _frontier_parts(frontier)
    rows = [
        [p.get("label", ""), p.get("threshold"), p.get("privacy"), p.get("utility")]
        for p in ours + others
    ]
    x_label = frontier.get("x_label", "privacy")
    y_label = frontier.get("y_label", "utility")
    table = _table(["synthesizer", "threshold", x_label, y_label], rows)
    return "<h2>Privacy-utility frontier</h2>" + _png(frontier_figure(frontier)) + table


# --------------------------------------------------------------------------- #
# The report
# --------------------------------------------------------------------------- #


def write_report(
    path_html: str | Path,
    results: Mapping,
    *,
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema | None = None,
    dcr: Mapping | None = None,
    history: Mapping | None = None,
    frontier: Mapping | None = None,
    title: str = "Synthetic data report",
    max_columns: int = 24,
) -> Path:
    """Write the HTML report and, beside it, the same numbers as JSON.

    Sections appear only when their inputs do: constraints
    (``results["constraints"]``: ``[{"name", "threshold", "value", "met"}]``),
    the privacy audit (``results["privacy"]``: ``{metric: {"value",
    "baseline"}}``), the DCR histogram and percentiles (``dcr``), utility
    (``results["utility"]``, as from :func:`~psygentab_jax._src.evaluate.utility`),
    fidelity (``results["fidelity"]`` and, when present,
    ``results["fidelity_baseline"]``), the marginals and correlation figures (from
    ``real`` and ``synthetic``), the ALM trajectories (``history``) and the
    frontier (``frontier``). Every piece of text is HTML-escaped.

    Everything is drawn and serialized before anything is written; the JSON and
    then the HTML are each written to a temporary file and renamed into place. An
    error while drawing therefore leaves no new file and any earlier report intact.

    Args:
      path_html: where the HTML goes; the JSON goes to ``path_html`` with the
        suffix ``.json``.
      results: the numbers, e.g. :func:`~psygentab_jax._src.evaluate.evaluate`'s
        output with ``"privacy"`` and ``"constraints"`` added.
      real: real (training) rows, for the marginals and correlations.
      synthetic: synthetic rows.
      schema: the table's schema; inferred from ``real`` when ``None``.
      dcr: ``{"synthetic": distances, "holdout": distances}``, each row's
        distance to its closest training record.
      history: ALM trajectories, see :func:`history_figure`.
      frontier: the privacy-utility frontier, see :func:`frontier_figure`.
      title: the report's title.
      max_columns: the most columns drawn in the marginals figure.

    Returns:
      The HTML file's path.

    Raises:
      ValueError: ``history`` series and epochs differ in length, or a figure
        cannot be drawn from its inputs.
    """
    path_html = Path(path_html)
    schema = resolve_schema(real, schema, None)
    if history is not None:
        _check_history(history)
    dcr_summary = _dcr_summary(dcr) if dcr is not None else None

    sections = []
    if results.get("constraints"):
        sections.append(_constraints_section(results["constraints"]))
    if results.get("privacy"):
        sections.append(_privacy_section(results["privacy"]))
    if dcr is not None:
        sections.append(_dcr_section(dcr, dcr_summary))
    if results.get("utility"):
        sections.append(_utility_section(results["utility"]))
    if results.get("fidelity"):
        baseline = results.get("fidelity_baseline")
        sections.append(_fidelity_section(results["fidelity"], baseline))
    sections.append(_figures_section(real, synthetic, schema, max_columns))
    if history is not None:
        sections.append("<h2>ALM trajectories</h2>" + _png(history_figure(history)))
    if frontier is not None:
        sections.append(_frontier_section(frontier))

    numbers = {
        "title": title,
        "rows": {"real": len(real), "synthetic": len(synthetic)},
        "results": _plain(dict(results)),
        "dcr": dcr_summary,
        "history": _plain(dict(history)) if history is not None else None,
        "frontier": _plain(dict(frontier)) if frontier is not None else None,
    }
    text_json = json.dumps(numbers, indent=2, allow_nan=False, ensure_ascii=False)
    text_html = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="note">{len(real)} real rows, {len(synthetic)} synthetic rows. '
        f"Missing values are shown as the level {_e(MISSING)}.</p>"
        + "".join(sections)
        + "</body></html>\n"
    )

    pg_io.write_text(path_html.with_suffix(".json"), text_json)
    pg_io.write_text(path_html, text_html)
    return path_html
