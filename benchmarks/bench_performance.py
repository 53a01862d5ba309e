"""The speed figures of the project in one run, each beside its peer.

Run under the benchmark environment (torch CPU, sdv, ctgan, sdmetrics)::

    .venv-bench/bin/python benchmarks/bench_performance.py            # full
    .venv-bench/bin/python benchmarks/bench_performance.py --quick    # smoke run

What is measured (sizes of the full run; ``--quick`` shrinks every one):

* **Training**, seconds per epoch of the VAE and GAN backbones (SDV's default
  sizes, batch 500; jitted epoch, compile excluded) against rows (heart_disease_uci
  resampled to 1k ... 64k rows), against columns (the first 4 ... 32 columns of
  support2, 4,000 rows) and against the number of constraints m = 1 ... 64
  (:meth:`Synthesizer.fit` on 4,000 rows; 9 distinct metrics, repeated with other
  thresholds beyond 9: the thresholds are data, so one compiled epoch serves every
  m). SDV's TVAE and CTGAN run beside the rows and columns sweeps up to
  ``--peer-max-rows`` rows, for ``--peer-epochs`` epochs of which the first is
  left out (as in ``bench_models.py``).
* **Sampling**, rows/s of :meth:`Synthesizer.sample` (decoded to a DataFrame)
  against the batch size and against the rows drawn; SDV's ``sample`` beside it.
* **Audit**, the exact DCR search (:func:`psygentab_jax.audit.nearest_neighbors`)
  against rows, beside scikit-learn's brute-force ``NearestNeighbors`` (each in
  its own process, from ``bench_audit.py``).
* **Encoder** fit, encode and decode beside CTGAN's ``DataTransformer`` at one
  size (``bench_encoder.py``), and the **ALM dual update** against m, jitted
  beside the same update dispatched op by op (``bench_alm.py``).

Each figure is given as a ratio to its peer and, where it does dense matmuls, as
a share of the float32 matmul peak timed in the same run (a jitted 4096^3
product). Dense-layer FLOPs are read from the parameter trees (``flops.py``); the
DCR search is counted as ``2 n m d``. A straight line through log time against
log rows gives the growth exponent: 1 is linear (training, sampling), 2
quadratic (the exact all-pairs audit).

Writes ``benchmarks/results/performance.md``, ``performance.json`` and the
``performance_*.png`` plots (``--out`` names another folder).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import bench_alm  # noqa: E402  (after the path set-up)
import bench_audit  # noqa: E402
import bench_encoder  # noqa: E402
import bench_models  # noqa: E402
import flops  # noqa: E402

import psygentab_jax as pg  # noqa: E402
from psygentab_jax import models  # noqa: E402

DATA = Path(os.environ.get("PSYGENTAB_DATA", ROOT.parent / "shared" / "data"))
RESULTS = HERE / "results"

# Distinct constraint expressions; the defaults first, so m >= 3 includes them.
CONSTRAINTS = (
    "dcr_share <= 0.55",
    "exact_match == 0",
    "mia_auc <= 0.55",
    "near_duplicate <= 0.05",
    "nndr >= 0.5",
    "dcr_p05_ratio >= 0.8",
    "class_share_gap <= 0.05",
    "corr_gap <= 0.1",
    "paper_p >= 0.8",
)


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every size of one run."""

    train_rows: tuple[int, ...] = (1_000, 4_000, 16_000, 64_000)
    timing_epochs: int = 3
    column_counts: tuple[int, ...] = (4, 8, 16, 32)
    column_rows: int = 4_000
    column_kinds: tuple[str, ...] = ("vae", "gan")
    constraint_counts: tuple[int, ...] = (1, 4, 16, 64)
    constraint_rows: int = 4_000
    constraint_epochs: int = 3
    constraint_kinds: tuple[str, ...] = ("vae", "gan")
    peer_max_rows: int = 16_000
    peer_epochs: int = 2
    peer_columns: bool = True
    sample_batches: tuple[int, ...] = (1_024, 4_096, 16_384, 65_536, 262_144)
    sample_rows: int = 262_144
    sample_sweep: tuple[int, ...] = (65_536, 262_144, 1_048_576)
    sweep_batch: int = 65_536
    peer_sample_rows: tuple[int, ...] = (5_000, 20_000)
    audit_rows: tuple[int, ...] = (5_000, 10_000, 20_000, 40_000)
    encoder_rows: int = 20_000
    encoder_repeats: int = 3
    alm_sizes: tuple[int, ...] = (1, 100, 10_000, 1_000_000)
    alm_repeats: int = 50
    matmul_size: int = 4096


QUICK = Sizes(
    train_rows=(500, 1_000),
    timing_epochs=2,
    column_counts=(4, 8),
    column_rows=500,
    column_kinds=("vae",),
    constraint_counts=(1, 4),
    constraint_rows=500,
    constraint_epochs=2,
    constraint_kinds=("vae",),
    peer_max_rows=500,
    peer_epochs=2,
    peer_columns=False,
    sample_batches=(1_024, 8_192),
    sample_rows=8_192,
    sample_sweep=(2_048, 8_192),
    sweep_batch=8_192,
    peer_sample_rows=(500, 1_000),
    audit_rows=(1_000, 2_000),
    encoder_rows=1_000,
    encoder_repeats=1,
    alm_sizes=(1, 1_000),
    alm_repeats=3,
    matmul_size=2048,
)

SECTIONS = ("training", "sampling", "audit", "encoder", "alm")


class Log:
    """Collects the results and prints a line per measurement."""

    def __init__(self):
        self.rows: list[dict] = []
        self.start = time.perf_counter()

    def add(self, **row) -> dict:
        self.rows.append(row)
        shown = {k: v for k, v in row.items() if not isinstance(v, list | dict)}
        print(f"[{time.perf_counter() - self.start:6.0f} s] {shown}", flush=True)
        return row

    def where(self, **match) -> list[dict]:
        return [r for r in self.rows if all(r.get(k) == v for k, v in match.items())]


@contextlib.contextmanager
def quiet():
    """Silence the peers' warnings, progress bars and logging."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def heart(rows: int, seed: int = 0) -> pd.DataFrame:
    """The embedded heart_disease_uci table resampled to ``rows`` rows."""
    df = pg.datasets.load("heart_disease_uci")
    return df.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)


def support2(columns: int, rows: int, seed: int = 0) -> pd.DataFrame:
    """The first ``columns`` columns of support2 (identifier dropped), resampled."""
    df = pg.datasets.load("support2", path=DATA)
    with quiet():
        identifiers = pg.infer_schema(df).identifiers
    df = df.drop(columns=identifiers).iloc[:, :columns]
    return df.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)


def backbones(frame: pd.DataFrame):
    """The encoded rows and the two backbones (default configs) for ``frame``."""
    with quiet():
        encoder = pg.TableEncoder(pg.infer_schema(frame)).fit(frame)
    x = encoder.encode(frame)
    stats = models.DataStats.from_encoded(encoder.layout, x)
    made = {
        "vae": models.make_vae(encoder.layout, stats),
        "gan": models.make_gan(encoder.layout, stats),
    }
    return x, made


# ---------------------------------------------------------------- training
def epoch_row(log, sweep, size, kind, backbone, x, epochs, peak, **extra):
    seconds = bench_models.time_ours(backbone, x, epochs)
    params = backbone.init(jax.random.key(0)).params
    work = flops.step_flops(backbone, params) * flops.epoch_steps(backbone, len(x))
    return _training_row(
        log, sweep, size, "ours", kind, seconds, work, peak, x.shape[1], len(x), extra
    )


def peer_epoch_row(log, sweep, size, kind, frame, epochs, peak, **extra):
    with quiet():
        metadata = bench_models.sdv_metadata(frame)
        seconds, d, c = bench_models.time_sdv(kind, frame, metadata, epochs)
    step = bench_models.gan_step_flops if kind == "gan" else bench_models.vae_step_flops
    steps = max(len(frame) // 500, 1) if kind == "gan" else -(-len(frame) // 500)
    work = step(d, c) * steps
    return _training_row(
        log, sweep, size, "sdv", kind, seconds, work, peak, d, len(frame), extra
    )


def _training_row(
    log, sweep, size, tool, kind, seconds, work, peak, width, rows, extra
):
    """One epoch-time row: ``work`` FLOPs in ``seconds``, against ``peak`` GFLOP/s."""
    return log.add(
        section="training",
        sweep=sweep,
        size=size,
        tool=tool,
        kind=kind,
        seconds=seconds,
        gflops=work / seconds / 1e9,
        peak_share=work / seconds / 1e9 / peak,
        width=int(width),
        rows=rows,
        **extra,
    )


def constraint_list(m: int) -> list[str]:
    """``m`` constraint expressions: the distinct ones, then repeats with other
    thresholds."""
    out = []
    for i in range(m):
        metric, op, threshold = CONSTRAINTS[i % len(CONSTRAINTS)].split()
        shift = 0.01 * (i // len(CONSTRAINTS))
        if metric == "exact_match":
            out.append(f"{metric} {op} {threshold}")
        else:
            value = float(threshold) + (shift if op == "<=" else -shift)
            out.append(f"{metric} {op} {value:g}")
    return out


def bench_training(log: Log, sizes: Sizes, peak: float, peers: bool) -> dict:
    for rows in sizes.train_rows:
        frame = heart(rows)
        x, made = backbones(frame)
        for kind, backbone in made.items():
            epoch_row(log, "rows", rows, kind, backbone, x, sizes.timing_epochs, peak)
            if peers and rows <= sizes.peer_max_rows:
                peer_epoch_row(log, "rows", rows, kind, frame, sizes.peer_epochs, peak)

    for columns in sizes.column_counts:
        frame = support2(columns, sizes.column_rows)
        x, made = backbones(frame)
        for kind in sizes.column_kinds:
            backbone = made[kind]
            epoch_row(
                log, "columns", columns, kind, backbone, x, sizes.timing_epochs, peak
            )
            if peers and sizes.peer_columns and len(frame) <= sizes.peer_max_rows:
                peer_epoch_row(
                    log, "columns", columns, kind, frame, sizes.peer_epochs, peak
                )

    synths = {}
    frame = heart(sizes.constraint_rows)
    for m in sizes.constraint_counts:
        for kind in sizes.constraint_kinds:
            synth, row = constrained_epochs(frame, kind, m, sizes.constraint_epochs)
            params = synth.params
            backbone = synth._backbone  # the built model, for its config
            n_train = len(synth.data_info["split"]["train"])
            work = flops.step_flops(backbone, params, penalty=True)
            work *= flops.epoch_steps(backbone, n_train)
            log.add(
                section="training",
                sweep="constraints",
                size=m,
                tool="ours",
                kind=kind,
                gflops=work / row["seconds"] / 1e9,
                peak_share=work / row["seconds"] / 1e9 / peak,
                rows=n_train,
                **row,
            )
            if "exact_match == 0" in constraint_list(m):
                synths.setdefault(kind, synth)
    return synths


def constrained_epochs(frame, kind, m, epochs):
    """Seconds per constrained epoch of :meth:`Synthesizer.fit` (after the first,
    which compiles), and the time to the end of the first epoch."""
    stamps = []
    synth = pg.Synthesizer(backbone=kind, epochs=epochs + 1, seed=0)
    start = time.perf_counter()
    with quiet():
        synth.fit(
            frame,
            target="disease",
            constraints=constraint_list(m),
            callback=lambda epoch, record: stamps.append(time.perf_counter()),
        )
    distinct = len({c.split()[0] for c in constraint_list(m)})
    return synth, {
        "seconds": float(np.median(np.diff(stamps))),
        "first_epoch_s": stamps[0] - start,
        "distinct": distinct,
    }


# ---------------------------------------------------------------- sampling
def timed_sample(synth, n, batch):
    synth.sample(min(n, batch), batch_size=batch)  # compile this chunk size
    start = time.perf_counter()
    frame = synth.sample(n, batch_size=batch, seed=1)
    seconds = time.perf_counter() - start
    assert len(frame) == n
    return seconds


def bench_sampling(log: Log, sizes: Sizes, synths: dict, peak: float, peers: bool):
    if not synths:
        frame = heart(sizes.constraint_rows)
        for kind in sizes.constraint_kinds:
            synths[kind] = constrained_epochs(frame, kind, 3, 1)[0]
    for kind, synth in synths.items():
        per_row = flops.sample_flops_per_row(synth._backbone, synth.params)
        for batch in sizes.sample_batches:
            seconds = timed_sample(synth, sizes.sample_rows, batch)
            rate = sizes.sample_rows / seconds
            log.add(
                section="sampling",
                sweep="batch",
                size=batch,
                tool="ours",
                kind=kind,
                seconds=seconds,
                rows_per_s=rate,
                gflops=rate * per_row / 1e9,
                peak_share=rate * per_row / 1e9 / peak,
            )
        batch = sizes.sweep_batch
        for n in sizes.sample_sweep:
            seconds = timed_sample(synth, n, batch)
            log.add(
                section="sampling",
                sweep="rows",
                size=n,
                tool="ours",
                kind=kind,
                seconds=seconds,
                rows_per_s=n / seconds,
                gflops=n / seconds * per_row / 1e9,
                peak_share=n / seconds * per_row / 1e9 / peak,
                batch=batch,
            )
        if not peers:
            continue
        frame = heart(sizes.constraint_rows)
        with quiet():
            metadata = bench_models.sdv_metadata(frame)
            model = bench_models.sdv_synth(kind, metadata, 1)
            model.fit({"table": frame})
            for n in sizes.peer_sample_rows:
                start = time.perf_counter()
                drawn = bench_models.sdv_sample(model, n)
                seconds = time.perf_counter() - start
                log.add(
                    section="sampling",
                    sweep="rows",
                    size=len(drawn),
                    tool="sdv",
                    kind=kind,
                    seconds=seconds,
                    rows_per_s=len(drawn) / seconds,
                )


# ------------------------------------------------------------------- audit
def bench_audit_rows(log: Log, sizes: Sizes, peak: float, peers: bool):
    methods = ["jax", "brute"] if peers else ["jax"]
    for rows in sizes.audit_rows:
        with tempfile.TemporaryDirectory() as tmp:
            info = bench_audit.make_data("heart_disease_uci", rows, 0.05, 0, Path(tmp))
            for key in methods:
                result = bench_audit.run_method(
                    *bench_audit.METHODS[key], Path(tmp), (256, 2048), 3600.0
                )
                if "seconds" not in result:
                    log.add(section="audit", size=rows, tool=key, error=str(result))
                    continue
                work = 2.0 * rows * rows * info["d"]
                log.add(
                    section="audit",
                    sweep="rows",
                    size=rows,
                    tool="ours" if key == "jax" else "sklearn",
                    kind="dcr",
                    seconds=result["seconds"],
                    cpu_seconds=result["cpu_seconds"],
                    rss_increase_mb=result["rss_peak_mb"] - result["rss_before_mb"],
                    gflops=work / result["seconds"] / 1e9,
                    peak_share=work / result["seconds"] / 1e9 / peak,
                    width=info["d"],
                )


# ----------------------------------------------------- encoder and the ALM
def bench_encoder_once(log: Log, sizes: Sizes, peers: bool):
    frame, schema = bench_encoder.load_rows(sizes.encoder_rows, 0)
    ours = bench_encoder.bench_ours(frame, schema, sizes.encoder_repeats)
    theirs = {}
    if peers:
        with quiet():
            theirs = bench_encoder.bench_ctgan(frame, schema, 1)
    n = len(frame)
    for what, mine, peer in (
        ("fit (s)", ours["fit_s"], theirs.get("fit_s")),
        ("encode (rows/s)", ours["encode"], theirs.get("encode")),
        ("decode (rows/s)", ours["decode"], theirs.get("decode")),
    ):
        log.add(
            section="encoder",
            sweep="once",
            size=n,
            tool="ours",
            kind=what,
            value=mine,
            peer=peer,
            width=ours["width"],
        )


def bench_alm_sizes(log: Log, sizes: Sizes):
    for m in sizes.alm_sizes:
        seconds, warmup = bench_alm.time_update(m, sizes.alm_repeats)
        eager, _ = bench_alm.time_update(m, max(3, sizes.alm_repeats // 10), jit=False)
        log.add(
            section="alm",
            sweep="m",
            size=m,
            tool="ours",
            kind="dual update",
            seconds=seconds,
            peer_seconds=eager,
            compile_s=warmup,
        )


# ------------------------------------------------------------------ output
def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:,.1f} ms"
    return f"{seconds:,.2f} s"


def _ratio(value) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:,.1f}×"


def _share(row) -> str:
    share = row.get("peak_share")
    return "" if share is None else f"{100 * share:.1f} %"


def _rate(row) -> str:
    return "" if row.get("gflops") is None else f"{row['gflops']:.2f}"


PEER_NAMES = {
    ("training", "vae"): "SDV TVAE",
    ("training", "gan"): "SDV CTGAN",
    ("sampling", "vae"): "SDV TVAE",
    ("sampling", "gan"): "SDV CTGAN",
}


def table_rows(log: Log) -> list[str]:
    lines = [
        "| section | measurement | size | ours | peer | peer figure "
        "| ours vs peer | ours GFLOP/s | ours % of matmul peak "
        "| peer % of matmul peak |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    # Training.
    for sweep, unit in (("rows", "rows"), ("columns", "columns")):
        for row in log.where(section="training", sweep=sweep, tool="ours"):
            peer = log.where(
                section="training",
                sweep=sweep,
                tool="sdv",
                kind=row["kind"],
                size=row["size"],
            )
            peer = peer[0] if peer else None
            size = f"{row['size']:,} {unit}"
            if sweep == "columns":
                size += f", {row['rows']:,} rows, width {row['width']}"
            lines.append(
                f"| training | s / epoch, {row['kind'].upper()} | {size} "
                f"| {_fmt_time(row['seconds'])} "
                f"| {PEER_NAMES['training', row['kind']] if peer else ''} "
                f"| {_fmt_time(peer['seconds']) if peer else ''} "
                f"| {_ratio(peer['seconds'] / row['seconds']) if peer else ''} "
                f"| {_rate(row)} | {_share(row)} | {_share(peer) if peer else ''} |"
            )
    for row in log.where(section="training", sweep="constraints"):
        base = log.where(
            section="training",
            sweep="constraints",
            kind=row["kind"],
            size=min(r["size"] for r in log.where(sweep="constraints")),
        )[0]
        lines.append(
            f"| training | s / constrained epoch, {row['kind'].upper()} "
            f"| m = {row['size']} ({row['distinct']} distinct), "
            f"{row['rows']:,} train rows | {_fmt_time(row['seconds'])} "
            f"| ours, m = {base['size']} | {_fmt_time(base['seconds'])} "
            f"| {row['seconds'] / base['seconds']:.2f}× the time | {_rate(row)} "
            f"| {_share(row)} | |"
        )
    # Sampling.
    peers = {
        kind: max(
            log.where(section="sampling", tool="sdv", kind=kind),
            key=lambda r: r["size"],
            default=None,
        )
        for kind in ("vae", "gan")
    }
    for row in log.where(section="sampling", tool="ours"):
        peer = peers[row["kind"]]
        size = (
            f"batch {row['size']:,}, {row['seconds'] * row['rows_per_s']:,.0f} rows"
            if row["sweep"] == "batch"
            else f"{row['size']:,} rows, batch {row['batch']:,}"
        )
        name = rate = ratio = ""
        if peer:
            name = f"{PEER_NAMES['sampling', row['kind']]}, {peer['size']:,} rows"
            rate = f"{peer['rows_per_s']:,.0f}"
            ratio = _ratio(row["rows_per_s"] / peer["rows_per_s"])
        lines.append(
            f"| sampling | rows/s, {row['kind'].upper()} | {size} "
            f"| {row['rows_per_s']:,.0f} | {name} | {rate} | {ratio} "
            f"| {_rate(row)} | {_share(row)} | |"
        )
    # Audit.
    for row in log.where(section="audit", tool="ours"):
        peer = log.where(section="audit", tool="sklearn", size=row["size"])
        peer = peer[0] if peer else None
        lines.append(
            f"| audit | exact DCR search, s | {row['size']:,} × {row['size']:,} rows, "
            f"d = {row['width']} | {_fmt_time(row['seconds'])} "
            f"| {'scikit-learn brute' if peer else ''} "
            f"| {_fmt_time(peer['seconds']) if peer else ''} "
            f"| {_ratio(peer['seconds'] / row['seconds']) if peer else ''} "
            f"| {_rate(row)} | {_share(row)} | {_share(peer) if peer else ''} |"
        )
    # Encoder.
    for row in log.where(section="encoder"):
        peer = row["peer"]
        if peer is None:
            ratio = None
        elif row["kind"].startswith("fit"):
            ratio = peer / row["value"]
        else:
            ratio = row["value"] / peer
        fmt = (
            (lambda v: f"{v:.2f}")
            if row["kind"].startswith("fit")
            else (lambda v: f"{v:,.0f}")
        )
        lines.append(
            f"| encoder | {row['kind']} | {row['size']:,} rows of covid_testing "
            f"| {fmt(row['value'])} | {'CTGAN DataTransformer' if peer else ''} "
            f"| {fmt(peer) if peer else ''} | {_ratio(ratio)} | | n/a | n/a |"
        )
    # ALM.
    for row in log.where(section="alm"):
        lines.append(
            f"| ALM | dual update | m = {row['size']:,} "
            f"| {_fmt_time(row['seconds'])} | same update, not jitted "
            f"| {_fmt_time(row['peer_seconds'])} "
            f"| {_ratio(row['peer_seconds'] / row['seconds'])} | | n/a | n/a |"
        )
    return lines


def slopes(log: Log) -> list[tuple[str, float]]:
    """Growth exponents: log time against log size."""
    found = []

    def fit(label, rows, x="size"):
        if len(rows) >= 2:
            times = [r["seconds"] for r in rows]
            found.append((label, flops.loglog_slope([r[x] for r in rows], times)))

    for kind in ("vae", "gan"):
        for tool, name in (("ours", "ours"), ("sdv", PEER_NAMES["training", kind])):
            fit(
                f"training s/epoch vs rows, {kind.upper()}, {name}",
                log.where(section="training", sweep="rows", tool=tool, kind=kind),
            )
        fit(
            f"training s/epoch vs encoded width, {kind.upper()}, ours",
            log.where(section="training", sweep="columns", tool="ours", kind=kind),
            x="width",
        )
        fit(
            f"training s/epoch vs m constraints, {kind.upper()}, ours",
            log.where(section="training", sweep="constraints", kind=kind),
        )
        for tool, name in (("ours", "ours"), ("sdv", PEER_NAMES["sampling", kind])):
            fit(
                f"sampling time vs rows, {kind.upper()}, {name}",
                log.where(section="sampling", sweep="rows", tool=tool, kind=kind),
            )
    for tool, name in (("ours", "ours"), ("sklearn", "scikit-learn brute")):
        audit = log.where(section="audit", tool=tool)
        fit(f"audit time vs rows (all pairs), {name}", audit)
    fit("ALM dual update vs m, ours", log.where(section="alm"))
    return found


def plots(log: Log, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    styles = {"ours": "-o", "sdv": "--s", "sklearn": "--s"}

    def panel(ax, rows_by_label, x, y, xlabel, ylabel, guide=None):
        for label, (rows, style) in rows_by_label.items():
            if rows:
                ax.plot([r[x] for r in rows], [r[y] for r in rows], style, label=label)
        first = next((rows for rows, _ in rows_by_label.values() if rows), None)
        if guide and first and len(first) > 1:
            # A line of slope ``guide`` through the first series' first point.
            x0, y0 = first[0][x], first[0][y]
            xs = np.array([x0, first[-1][x]], float)
            label = "∝ size" if guide == 1 else f"∝ size^{guide}"
            ax.plot(xs, y0 * (xs / x0) ** guide, ":", color="grey", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)

    def save(fig, name):
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, sweep, x, xlabel in (
        (axes[0], "rows", "size", "rows"),
        (axes[1], "columns", "width", "encoded width (support2 columns)"),
        (axes[2], "constraints", "size", "constraints m"),
    ):
        series = {}
        for kind in ("vae", "gan"):
            for tool in ("ours", "sdv"):
                name = f"ours {kind.upper()}"
                if tool != "ours":
                    name = PEER_NAMES["training", kind]
                series[name] = (
                    log.where(section="training", sweep=sweep, tool=tool, kind=kind),
                    styles[tool],
                )
        guide = 1 if sweep == "rows" else None
        panel(ax, series, x, "seconds", xlabel, "seconds per epoch", guide)
    axes[0].set_title("epoch time vs rows")
    axes[1].set_title("epoch time vs columns")
    axes[2].set_title("constrained epoch time vs m")
    save(fig, "performance_training.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    series = {
        f"ours {kind.upper()}": (
            log.where(section="sampling", sweep="batch", kind=kind),
            styles["ours"],
        )
        for kind in ("vae", "gan")
    }
    panel(axes[0], series, "size", "rows_per_s", "batch size", "rows / s")
    axes[0].set_title("Synthesizer.sample rows/s vs batch size")
    series = {}
    for kind in ("vae", "gan"):
        for tool in ("ours", "sdv"):
            name = f"ours {kind.upper()}"
            if tool != "ours":
                name = PEER_NAMES["sampling", kind]
            series[name] = (
                log.where(section="sampling", sweep="rows", tool=tool, kind=kind),
                styles[tool],
            )
    panel(axes[1], series, "size", "seconds", "rows drawn", "seconds", guide=1)
    axes[1].set_title("sampling time vs rows")
    save(fig, "performance_sampling.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    series = {
        "ours (blocked JAX)": (log.where(section="audit", tool="ours"), styles["ours"]),
        "scikit-learn brute": (
            log.where(section="audit", tool="sklearn"),
            styles["sklearn"],
        ),
    }
    panel(axes[0], series, "size", "seconds", "rows (n = m)", "seconds", guide=2)
    axes[0].set_title("exact DCR search vs rows")
    alm_rows = log.where(section="alm")
    series = {
        "jitted": (alm_rows, "-o"),
        "not jitted": (
            [dict(r, seconds=r["peer_seconds"]) for r in alm_rows],
            "--s",
        ),
    }
    panel(axes[1], series, "size", "seconds", "constraints m", "seconds")
    axes[1].set_title("ALM dual update vs m")
    save(fig, "performance_audit_alm.png")
    return written


def markdown(args, sizes, log, peaks, elapsed, images) -> str:
    peak = max(p["wall_gflops"] for p in peaks)
    load = os.getloadavg()
    device = jax.devices()[0]
    lines = [
        "# Performance suite",
        "",
        f"Command: `.venv-bench/bin/python benchmarks/bench_performance.py"
        f"{' --quick' if args.quick else ''}` ({elapsed / 60:.1f} min). "
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, jax "
        f"{jax.__version__} on {device.platform}; load average {load[0]:.1f} / "
        f"{load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) at the end. float32 matmul "
        f"peak {peak:.1f} GFLOP/s ({sizes.matmul_size}³, best of "
        + ", ".join(f"{p['wall_gflops']:.1f}" for p in peaks)
        + " timed at the start and the end).",
        "",
        '"ours vs peer" is how many times faster ours is (peer time / our time, or '
        "our rate / peer rate). GFLOP/s counts dense-layer FLOPs read from the "
        "parameter trees (training: forward and backward of every network a step "
        "runs; sampling: the generator's or decoder's forward pass per row; the "
        "constraint metrics are not counted) and `2 n m d` for the DCR search. "
        "Times are medians of the timed epochs after a compiling one; SDV's first "
        "epoch is left out too. The constrained epochs are whole "
        "`Synthesizer.fit` epochs (backbone, per-step penalty on 500 prior "
        "rows, exact constraint values on 512 hard rows, dual update), with the "
        "Synthesizer's batch rule (a fifth of the training rows, 64 to 500) and the "
        "GAN's 50-step minimum per epoch; the peer there is the same epoch with "
        "the fewest constraints. Sampling draws through "
        "`Synthesizer.sample(n, batch_size=...)` with `exact_match == 0` among the "
        "constraints (so every row is also hashed and checked against the "
        "training rows) and decodes to a DataFrame.",
        "",
        *table_rows(log),
        "",
        "Growth exponents (slope of log time against log size; 1 = linear):",
        "",
    ]
    for label, value in slopes(log):
        lines.append(f"- {label}: {value:.2f}")
    lines += ["", "Plots: " + ", ".join(f"`{p.name}`" for p in images) + "."]
    if args.quick:
        lines += [
            "",
            "**Quick run**: tiny sizes that only check the script; per-call overheads "
            "dominate and the exponents mean little.",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (< 2 min)")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {', '.join(SECTIONS)}",
    )
    parser.add_argument("--no-peers", action="store_true", help="ours only")
    parser.add_argument("--peer-max-rows", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.peer_max_rows is not None:
        sizes = dataclasses.replace(sizes, peer_max_rows=args.peer_max_rows)
    sections = set(args.sections.split(","))
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    peers = not args.no_peers
    if peers:
        import torch

        torch.manual_seed(0)

    start = time.perf_counter()
    log = Log()
    peaks = [flops.matmul_peak(sizes.matmul_size)]
    peak = peaks[0]["wall_gflops"]
    print(f"matmul peak {peak:.1f} GFLOP/s", flush=True)
    synths = {}
    if "training" in sections:
        synths = bench_training(log, sizes, peak, peers)
    if "sampling" in sections:
        bench_sampling(log, sizes, synths, peak, peers)
    if "audit" in sections:
        bench_audit_rows(log, sizes, peak, peers)
    if "encoder" in sections:
        bench_encoder_once(log, sizes, peers)
    if "alm" in sections:
        bench_alm_sizes(log, sizes)
    peaks.append(flops.matmul_peak(sizes.matmul_size))

    # Every share of the peak against the best peak of the run.
    best = max(p["wall_gflops"] for p in peaks)
    for row in log.rows:
        if row.get("gflops") is not None:
            row["peak_share"] = row["gflops"] / best

    args.out.mkdir(parents=True, exist_ok=True)
    images = plots(log, args.out)
    elapsed = time.perf_counter() - start
    text = markdown(args, sizes, log, peaks, elapsed, images)
    print(text)
    for name, content in (
        ("performance.md", text),
        (
            "performance.json",
            json.dumps(
                {
                    "sizes": dataclasses.asdict(sizes),
                    "peaks": peaks,
                    "rows": log.rows,
                    "slopes": dict(slopes(log)),
                },
                indent=1,
                default=float,
            ),
        ),
    ):
        temporary = (args.out / name).with_suffix(".tmp")
        temporary.write_text(content)
        temporary.replace(args.out / name)


if __name__ == "__main__":
    main()
