"""The whole exact audit at scale: R synthetic rows against R training rows.

A real table is split by a fitted :class:`~psygentab_jax.Synthesizer` (its own
train / reference / holdout split, seed 0). The audit's training rows are its
training patients and the audit's holdout rows its reference and holdout
patients (never trained on), each resampled with replacement to ``--rows`` rows
in the metric space, with Gaussian noise (``--noise``, metric units) on the
numeric coordinates so that rows are not all exact repeats. The synthetic rows
are ``--rows`` rows sampled from the fitted model (``--synthetic model``, the
default) or a third resample of the training patients (``--synthetic
resample``, a generator that copies). At a million rows every patient appears
thousands of times, so the audit's figures describe the resampling more than
the model; the point here is time and memory.

:func:`psygentab_jax.audit.audit_privacy` then runs once in a fresh subprocess:
DCR and NNDR of synthetic and holdout rows to the training rows, the DCR share
and its null, the distance and density (DOMIAS-style) membership attacks with
their null, attribute inference on the table's outcome, duplicates and the
composite score. Each of its nearest-neighbour searches and kernel-density sums
is timed (wall and CPU seconds of the process, all threads) and its resident
memory sampled every 50 ms; a part's FLOPs are counted as the matmul of the
distance expansion, ``2 n m (d + 1)`` (the selection of the nearest rows and the
exponentials are extra work not counted), and set against a jitted 4096^3
float32 matmul timed in the same process. Every part streams blocks of
``query_block x reference_block`` distances, so memory should stay flat in the
number of rows beyond the inputs themselves; an ``n x n`` float32 matrix would
already be 1.6 GB at 20,000 rows.

Usage (the benchmark environment is not needed)::

    .venv/bin/python benchmarks/bench_audit_scale.py                 # 10^6 x 10^6
    .venv/bin/python benchmarks/bench_audit_scale.py --rows 20000    # a check

The markdown is printed and written to ``benchmarks/results/audit_scale.md``
(``--out``); the table states an estimate of the wall time at
``--estimate-rows`` from this run, scaling every search by rows squared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):  # run from a checkout without installing
    if path not in sys.path:
        sys.path.insert(0, path)

import flops  # noqa: E402  (after the path set-up)

DATA = Path(os.environ.get("PSYGENTAB_DATA", ROOT.parent / "shared" / "data"))
RESULTS = HERE / "results" / "audit_scale.md"

# What each search of audit_privacy is, by the audit functions on the call stack
# and the order of the calls with that stack. Labels only: a call not listed
# here is reported under its stack.
PARTS = {
    ("audit_privacy",): [
        "DCR + NNDR: synthetic -> train",
        "DCR + NNDR baseline: holdout -> train",
    ],
    # The DCR share reuses "synthetic -> train" above, and the distance attack's
    # null reuses "holdout half -> other holdout half" (the non-members' DCRs).
    ("audit_privacy", "_dcr_share", "dcr"): [
        "DCR share: synthetic -> holdout",
        "DCR share null: holdout half -> train subsample",
        "DCR share null: holdout half -> other holdout half",
    ],
    ("audit_privacy", "distance_attack", "dcr"): [
        "distance MIA: members -> synthetic",
        "distance MIA: non-members -> synthetic",
    ],
    ("audit_privacy", "dcr"): [
        "distance MIA null: members -> holdout half",
    ],
    ("audit_privacy", "density_attack", "kde_bandwidth"): [
        "density MIA: kernel width (holdout half -> itself)",
    ],
    ("audit_privacy", "density_attack", "score"): [
        "density MIA: members, synthetic KDE",
        "density MIA: members, holdout-half KDE",
        "density MIA: non-members, synthetic KDE",
        "density MIA: non-members, holdout-half KDE",
    ],
    ("audit_privacy", "attribute_inference", "attack"): [
        "attribute inference: train patients -> synthetic",
        "attribute inference: holdout patients -> synthetic",
    ],
}
TIMED_HELPERS = ("duplicate_rate", "quantile_gaps", "_attack")


class Column(NamedTuple):
    """A metric column as the audit reads it (``MetricColumn`` fields)."""

    name: str
    kind: str
    start: int
    width: int


# ------------------------------------------------------------------ the data
def make_data(args, out: Path) -> dict:
    """Fit the model, build the three row sets, save them as ``.npy`` in ``out``."""
    import pandas as pd
    from bench_audit import resample

    import psygentab_jax as pj

    if args.table == pj.datasets.EMBEDDED:
        df = pj.datasets.load(args.table)
    else:
        df = pj.datasets.load(args.table, path=DATA)
    target = pj.datasets.info(args.table).target
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # identifier warnings
        synth = pj.Synthesizer(backbone=args.backbone, epochs=args.epochs, seed=0)
        synth.fit(df, target=target)
    frames = synth.attach_data(df)
    unseen = pd.concat([frames["holdout"], frames["reference"]], ignore_index=True)
    train_pool, holdout_pool = synth.metric_views(frames["train"], unseen)
    space = synth.encoder.metric_space
    numeric = [c.start for c in space.columns if c.kind == "numeric"]
    fitted = time.perf_counter() - start

    rng = np.random.default_rng(args.seed)
    train = resample(train_pool, args.rows, numeric, args.noise, rng)
    holdout = resample(holdout_pool, args.rows, numeric, args.noise, rng)
    start = time.perf_counter()
    if args.synthetic == "model":
        sampled = synth.sample(args.rows, seed=args.seed, batch_size=65_536)
        synthetic = synth.metric_views(sampled)[0].astype(np.float32)
        del sampled
    else:
        synthetic = resample(train_pool, args.rows, numeric, args.noise, rng)
    drawn = time.perf_counter() - start
    saved = {"synthetic": synthetic, "train": train, "holdout": holdout}
    for name, rows in saved.items():
        np.save(out / f"{name}.npy", rows)
    return {
        "table": args.table,
        "target": target,
        "d": int(train.shape[1]),
        "numeric": len(numeric),
        "train_patients": len(train_pool),
        "holdout_patients": len(holdout_pool),
        "columns": [list(c) for c in _columns(space)],
        "fit_s": fitted,
        "synthetic_s": drawn,
    }


def _columns(space) -> list[Column]:
    return [Column(c.name, c.kind, c.start, c.width) for c in space.columns]


# ---------------------------------------------------------------- the worker
def worker(spec: dict) -> dict:
    """Run the audit in this fresh process; time and sample memory per part."""
    import jax  # noqa: F401  (import cost stays out of the measured increase)

    from psygentab_jax._src import audit as audit_lib

    data = Path(spec["data"])
    peak_before = flops.matmul_peak()
    synthetic = np.load(data / "synthetic.npy")
    train = np.load(data / "train.npy")
    holdout = np.load(data / "holdout.npy")
    columns = [Column(*c) for c in spec["columns"]]
    search = dict(query_block=spec["blocks"][0], reference_block=spec["blocks"][1])

    def audit():
        return audit_lib.audit_privacy(
            synthetic,
            train,
            holdout,
            columns,
            seed=0,
            sensitive=spec["sensitive"],
            **search,
        )

    warmup = None
    if spec["warmup"]:
        start = time.perf_counter()
        audit()
        warmup = time.perf_counter() - start

    sampler = flops.RssSampler()
    parts: list[dict] = []
    seen: Counter = Counter()
    originals = {}

    def timed(name, kind):
        original = getattr(audit_lib, name)
        originals[name] = original

        def wrapper(*args, **kwargs):
            stack = _audit_stack(audit_lib.__dict__)
            seen[name, stack] += 1
            if kind == "search":
                labels, order = PARTS.get(stack, []), seen[name, stack] - 1
                what = labels[order] if order < len(labels) else " > ".join(stack)
            else:
                what = " > ".join(stack[1:] or stack)
            sampler.reset()
            wall, cpu = time.perf_counter(), time.process_time()
            result = original(*args, **kwargs)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            part = {"what": what, "function": name, "wall": wall, "cpu": cpu}
            part["peak_rss_mb"] = sampler.peak()
            if kind == "search":
                n, d = np.shape(args[0])
                part.update(queries=n, reference=len(args[1]), d=d)
                part["k"] = kwargs.get("k", 1) if name == "nearest_neighbors" else 0
            parts.append(part)
            return result

        setattr(audit_lib, name, wrapper)

    for name in ("nearest_neighbors", "kde_log_density_np"):
        timed(name, "search")
    for name in TIMED_HELPERS:
        timed(name, "helper")
    rss_inputs = flops.rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    try:
        report = audit()
    finally:
        for name, original in originals.items():
            setattr(audit_lib, name, original)
    total, total_cpu = time.perf_counter() - start, time.process_time() - cpu
    sampler.stop()
    audit_peak = max([sampler.high] + [p["peak_rss_mb"] for p in parts])
    peak_after = flops.matmul_peak()

    keys = (
        "dcr_median",
        "dcr_median_holdout",
        "dcr_share",
        "dcr_share_holdout",
        "exact_match_rate",
        "exact_match_rate_holdout",
        "mia_distance_auc",
        "mia_distance_auc_holdout",
        "mia_density_auc",
        "attribute_score",
        "attribute_score_holdout",
        "privacy_score",
    )
    figures = report.to_dict()
    return {
        "parts": parts,
        "wall": total,
        "cpu": total_cpu,
        "warmup": warmup,
        "rss_inputs_mb": rss_inputs,
        "audit_peak_rss_mb": audit_peak,
        "peak_rss_mb": flops.peak_rss_mb(),
        "peaks": [peak_before, peak_after],
        "report": {k: figures[k] for k in keys},
    }


def _audit_stack(module_globals) -> tuple[str, ...]:
    """Names of the audit-module functions on the call stack, outermost first."""
    frame, names = sys._getframe(2), []
    while frame is not None:
        if frame.f_globals is module_globals:
            names.append(frame.f_code.co_name)
        frame = frame.f_back
    return tuple(reversed(names))


def run_worker(spec: dict, timeout: float) -> dict:
    command = [sys.executable, __file__, "--worker", json.dumps(spec)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=True
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    except subprocess.CalledProcessError as error:
        return {"error": error.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ the table
def pair_flops(part: dict) -> float:
    return 2.0 * part["queries"] * part["reference"] * (part["d"] + 1)


def estimate(parts: list[dict], rows: int, target: int) -> float:
    """Wall seconds at ``target`` rows: searches scale with rows squared, the rest
    (sorting, ROC curves) about linearly."""
    scale = target / rows
    return sum(p["wall"] * (scale**2 if "queries" in p else scale) for p in parts)


def markdown(args, info: dict, result: dict) -> str:
    rows = args.rows
    peak = max(p["wall_gflops"] for p in result["peaks"])
    peak_cpu = max(p["cpu_gflops"] for p in result["peaks"])
    load = os.getloadavg()
    counted = sum(pair_flops(p) for p in result["parts"] if "queries" in p)
    source = (
        f"sampled from a {args.backbone.upper()} fitted for {args.epochs} epochs "
        f"({info['synthetic_s']:.0f} s to sample and embed)"
        if args.synthetic == "model"
        else "a third resample of the training patients (a copying generator)"
    )
    lines = [
        f"# Exact audit, {rows:,} synthetic × {rows:,} train × {rows:,} holdout rows",
        "",
        f"Command: `python benchmarks/bench_audit_scale.py --rows {rows} --table "
        f"{args.table}"
        + (" --synthetic resample" if args.synthetic != "model" else "")
        + "`.",
        f"`{info['table']}` in the metric space, d = {info['d']} "
        f"({info['numeric']} numeric coordinates, noise {args.noise} on each): "
        f"{info['train_patients']} training and {info['holdout_patients']} unseen "
        f"patients, each set resampled to {rows:,} rows; synthetic rows {source}. "
        f"Attribute inference on `{info['target']}`. Blocks {args.query_block} × "
        f"{args.reference_block}.",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) at the end. "
        f"float32 matmul peak {peak:.1f} GFLOP/s per wall second, {peak_cpu:.1f} per "
        f"CPU second (best of before and after the audit).",
        "",
        "| part | function | queries → reference | wall (s) | CPU (s) | GFLOP/s "
        "| % of peak (wall) | % of peak (CPU) | peak RSS (MB) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in result["parts"]:
        if "queries" in p:
            work = pair_flops(p)
            size = f"{p['queries']:,} → {p['reference']:,}"
            rate = f"{work / p['wall'] / 1e9:.1f}"
            share = f"{100 * work / p['wall'] / 1e9 / peak:.0f} %"
            share_cpu = f"{100 * work / max(p['cpu'], 1e-9) / 1e9 / peak_cpu:.0f} %"
            name = p["function"] + (f" k={p['k']}" if p["k"] else "")
        else:
            size = rate = share = share_cpu = ""
            name = p["function"]
        lines.append(
            f"| {p['what']} | {name} | {size} | {p['wall']:.2f} | {p['cpu']:.2f} "
            f"| {rate} | {share} | {share_cpu} | {p['peak_rss_mb']:.0f} |"
        )
    listed = sum(p["wall"] for p in result["parts"])
    lines.append(
        f"| rest of `audit_privacy` | | | {result['wall'] - listed:.2f} | | | | | |"
    )
    rate = counted / result["wall"] / 1e9
    lines.append(
        f"| **total** | `audit_privacy` | | **{result['wall']:.1f}** | "
        f"**{result['cpu']:.1f}** | {rate:.1f} | {100 * rate / peak:.0f} % | "
        f"{100 * counted / result['cpu'] / 1e9 / peak_cpu:.0f} % | "
        f"**{result['audit_peak_rss_mb']:.0f}** |"
    )
    report = result["report"]
    warm = result["warmup"]
    lines += [
        "",
        "Peak resident memory during the audit (sampled every 50 ms): "
        f"{result['audit_peak_rss_mb']:,.0f} MB, of which "
        f"{result['rss_inputs_mb']:,.0f} MB were resident before it started (the "
        "interpreter, XLA, the compiled searches and the three input arrays of "
        f"{3 * rows * info['d'] * 4 / 2**20:,.0f} MB); the process's high-water mark "
        f"(VmHWM, including the matmul peak's 4096² operands"
        + (" and the warm-up audit" if result["warmup"] is not None else "")
        + f") was {result['peak_rss_mb']:,.0f} MB. Counted work "
        f"{counted:.3g} FLOP. "
        + (
            f"Compiled beforehand by one untimed audit ({warm:.1f} s)."
            if warm is not None
            else "Compilation (a few seconds per distinct shape) is inside the times."
        ),
        "",
        "Audit figures (of the resampled rows): "
        + ", ".join(f"{k} {v:.3f}" for k, v in report.items())
        + ".",
    ]
    if args.estimate_rows and args.estimate_rows != rows:
        seconds = estimate(result["parts"], rows, args.estimate_rows)
        lines += [
            "",
            f"Estimate at {args.estimate_rows:,} rows from this run (searches × "
            f"rows², the rest × rows): {seconds / 60:,.0f} min "
            f"({seconds / 3600:.1f} h) wall on this machine at this load.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--table", default="pima")
    parser.add_argument("--synthetic", choices=("model", "resample"), default="model")
    parser.add_argument("--backbone", choices=("vae", "gan"), default="vae")
    parser.add_argument("--epochs", type=int, default=30, help="of the model")
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--query-block", type=int, default=256)
    parser.add_argument("--reference-block", type=int, default=2048)
    parser.add_argument(
        "--warmup",
        choices=("auto", "yes", "no"),
        default="auto",
        help="compile with one untimed audit first (auto: up to 100,000 rows)",
    )
    parser.add_argument("--estimate-rows", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=6 * 3600.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        info = make_data(args, Path(tmp))
        print(
            f"data ready: d = {info['d']}, model fit {info['fit_s']:.1f} s, "
            f"synthetic rows {info['synthetic_s']:.1f} s",
            flush=True,
        )
        warmup = args.warmup == "yes" or (
            args.warmup == "auto" and args.rows <= 100_000
        )
        spec = {
            "data": tmp,
            "columns": info["columns"],
            "blocks": [args.query_block, args.reference_block],
            "sensitive": info["target"],
            "warmup": warmup,
        }
        result = run_worker(spec, args.timeout)
    if "error" in result:
        raise SystemExit(f"the audit failed: {result['error']}")
    text = markdown(args, info, result)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(args.out)


if __name__ == "__main__":
    main()
