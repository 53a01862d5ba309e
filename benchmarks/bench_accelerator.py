"""Accelerator check: the largest sizes that fit a time budget, on one device.

Four parts, each with its own share of ``--budget`` seconds (default 390), run
in order on the default JAX device:

1. **peak**: the card's matmul rate, timed on jitted square products in float32
   at full precision (``float32``), in float32 with TF32 products
   (``tensorfloat32``, JAX's default for float32 on recent NVIDIA cards) and in
   bfloat16;
2. **sampling**: rows/s of the VAE and GAN generators (``backbone.sample``,
   hard rows, jitted) for batches growing ×4 until the budget or the memory
   ends, then the host-side copy and decode of the largest batch to a
   DataFrame, and ``backbone.sample_compact`` at that batch where it exists;
3. **epochs**: seconds per epoch of the VAE and GAN backbones (SDV's default
   sizes, batch 500) for rows growing ×4, compile excluded, and one epoch at a
   large batch (``--big-batch``) on the largest rows;
4. **audit**: the exact DCR search (:func:`psygentab_jax.audit.nearest_neighbors`)
   for rows growing ×2 (cost ×4), after choosing the faster of two block shapes,
   then the whole :func:`~psygentab_jax.audit.audit_privacy` (synthetic, train
   and holdout rows) at the largest size its predicted time allows.

Rows come from the embedded ``heart_disease_uci`` table, resampled with
replacement (plus noise of 0.05 on numeric metric coordinates for the audit),
so nothing outside the package is read. Each figure is set against the measured
peaks: dense-layer FLOPs from the parameter trees (``flops.py``) for the
networks, ``2 n m (d + 1)`` for the search (which multiplies at full float32
precision). A size is started only when the time measured for the previous one,
scaled by the growth of the work, fits what is left of the part's budget.

Results are rewritten after every measurement to ``$OUT/accelerator.json`` and
``$OUT/accelerator.md`` (``$OUT`` defaults to ``./gpu-results``), so a run cut
short still leaves its figures. On a GPU machine run ``benchmarks/gpu_check.sh``;
on a CPU, ``--quick`` checks the script in about two minutes::

    OUT=/tmp/acc python benchmarks/bench_accelerator.py --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import flops  # noqa: E402  (after the path set-up)

import psygentab_jax as pg  # noqa: E402
from psygentab_jax import audit, models  # noqa: E402

# Shares of the budget: peak, sampling, epochs, audit.
SHARES = {"peak": 0.08, "sampling": 0.2, "epochs": 0.34, "audit": 0.38}

FULL = {
    "matmul": 16384,
    "sample_start": 65_536,
    "sample_max": 1 << 26,
    "epoch_start": 262_144,
    "epoch_max": 1 << 26,
    "audit_start": 65_536,
    "audit_max": 1 << 24,
    "compiles_s": 30.0,
}
QUICK = {
    "matmul": 1024,
    "sample_start": 1_024,
    "sample_max": 16_384,
    "epoch_start": 1_000,
    "epoch_max": 16_000,
    "audit_start": 1_000,
    "audit_max": 4_000,
    "compiles_s": 5.0,
}


class Recorder:
    """Holds the results and rewrites the JSON and markdown after each one."""

    def __init__(self, out: Path, meta: dict):
        self.out = out
        self.data = {
            "meta": meta,
            "peak": {},
            "sampling": [],
            "epochs": [],
            "audit": [],
        }
        out.mkdir(parents=True, exist_ok=True)

    def add(self, part: str, row: dict) -> None:
        if isinstance(self.data[part], dict):
            self.data[part].update(row)
        else:
            self.data[part].append(row)
        print(f"{part}: {json.dumps(row, default=float)}", flush=True)
        self.write()

    def write(self) -> None:
        self.data["meta"]["elapsed_s"] = time.perf_counter() - START
        for name, text in (
            ("accelerator.json", json.dumps(self.data, indent=1, default=float)),
            ("accelerator.md", markdown(self.data)),
        ):
            temporary = self.out / (name + ".tmp")
            temporary.write_text(text)
            temporary.replace(self.out / name)


START = time.perf_counter()


def device_memory() -> dict:
    """Peak and limit of the default device's memory, in GiB, where reported."""
    stats = jax.devices()[0].memory_stats() or {}
    return {
        key: stats[name] / 2**30
        for key, name in (
            ("peak_gib", "peak_bytes_in_use"),
            ("limit_gib", "bytes_limit"),
        )
        if name in stats
    }


def out_of_memory(error: Exception) -> bool:
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def ladder(start: int, stop: int, factor: int, growth: float, budget: float, run):
    """Run ``run(size)`` for sizes ``start, start * factor, ...`` up to ``stop``,
    while the predicted time of the next size fits what is left of ``budget``;
    stop early when the device runs out of memory.

    ``run`` returns the seconds of its work that grow with the size; the rest
    of its time (compilation, mostly) is taken as fixed, so the next size is
    predicted at ``fixed + growth * scaling``. Returns the last size that ran.
    """
    deadline = time.perf_counter() + budget
    size, predicted, done = start, 0.0, None
    while size <= stop:
        if done is not None and predicted > deadline - time.perf_counter():
            break
        began = time.perf_counter()
        try:
            scaling = run(size)
        except Exception as error:  # noqa: BLE001 (an OOM ends the ladder)
            if out_of_memory(error):
                print(f"  out of memory at {size:,}", flush=True)
                break
            raise
        total = time.perf_counter() - began
        scaling = min(scaling, total)
        predicted, done = total - scaling + growth * scaling, size
        size *= factor
    return done


# ------------------------------------------------------------------- parts
def bench_peak(record: Recorder, size: int, budget: float) -> dict:
    deadline = time.perf_counter() + budget
    peaks = {}
    for name, dtype, precision in (
        ("float32", jnp.float32, "float32"),
        ("tf32", jnp.float32, "tensorfloat32"),
        ("bf16", jnp.bfloat16, None),
    ):
        if time.perf_counter() > deadline:
            break
        if precision is None:
            rate = flops.matmul_peak(size, dtype=dtype, repeats=10)
        else:
            with jax.default_matmul_precision(precision):
                rate = flops.matmul_peak(size, dtype=dtype, repeats=10)
        peaks[name] = rate["wall_gflops"]
        record.add("peak", {f"{name}_gflops": rate["wall_gflops"], "size": size})
    return peaks


def heart_setup():
    """The embedded table, its encoder and encoded rows, and the two backbones."""
    df = pg.datasets.load("heart_disease_uci")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = pg.TableEncoder(pg.infer_schema(df)).fit(df)
    x = encoder.encode(df)
    stats = models.DataStats.from_encoded(encoder.layout, x)
    made = {
        "vae": models.make_vae(encoder.layout, stats),
        "gan": models.make_gan(encoder.layout, stats),
    }
    return df, encoder, x, made


def bench_sampling(record, setup, peaks, sizes, budget):
    _, encoder, _, made = setup
    for index, (kind, backbone) in enumerate(made.items()):
        share = budget / (len(made) - index)
        began = time.perf_counter()
        sampling_one(record, kind, backbone, encoder, peaks, sizes, share)
        budget -= time.perf_counter() - began


def sampling_one(record, kind, backbone, encoder, peaks, sizes, budget):
    """The batch ladder of one generator, then the host's share at the largest."""
    params = backbone.init(jax.random.key(0)).params
    per_row = flops.sample_flops_per_row(backbone, params)
    sample = jax.jit(backbone.sample, static_argnames=("n", "hard"))
    largest = {}

    def run(batch):
        rows = sample(params, jax.random.key(0), n=batch, hard=True)
        rows.block_until_ready()  # compile and first call
        best = np.inf
        for i in range(3):
            start = time.perf_counter()
            rows = sample(params, jax.random.key(i + 1), n=batch, hard=True)
            rows.block_until_ready()
            best = min(best, time.perf_counter() - start)
        rate = batch / best
        largest.update(batch=batch, rows=rows)
        scaling = 4 * best
        record.add(
            "sampling",
            {
                "kind": kind,
                "batch": batch,
                "seconds": best,
                "rows_per_s": rate,
                "tflops": rate * per_row / 1e12,
                "share_tf32": rate * per_row / 1e9 / peaks.get("tf32", np.nan),
                **device_memory(),
            },
        )
        return scaling

    ladder(sizes["sample_start"], sizes["sample_max"], 4, 4.0, budget * 0.7, run)
    if not largest:
        return
    # The host's share: copying the rows back and decoding a frame.
    start = time.perf_counter()
    host = np.asarray(largest.pop("rows"))
    copied = time.perf_counter() - start
    start = time.perf_counter()
    frame = encoder.decode(host[:1_000_000])
    decoded = time.perf_counter() - start
    record.add(
        "sampling",
        {
            "kind": kind,
            "batch": largest["batch"],
            "what": "host",
            "copy_rows_per_s": len(host) / copied,
            "decode_rows_per_s": len(frame) / decoded,
        },
    )
    del host, frame
    compact = getattr(backbone, "sample_compact", None)
    if compact is None:
        return
    # The compact form (scalars and category codes) where the backbone has it.
    compact = jax.jit(compact, static_argnames=("n",))
    batch = largest["batch"]
    try:
        jax.block_until_ready(compact(params, jax.random.key(0), n=batch))
        start = time.perf_counter()
        jax.block_until_ready(compact(params, jax.random.key(1), n=batch))
    except Exception as error:  # noqa: BLE001 (an OOM skips this figure)
        if not out_of_memory(error):
            raise
        return
    seconds = time.perf_counter() - start
    record.add(
        "sampling",
        {
            "kind": kind,
            "batch": batch,
            "what": "compact",
            "seconds": seconds,
            "rows_per_s": batch / seconds,
            "tflops": batch / seconds * per_row / 1e12,
            "share_tf32": batch / seconds * per_row / 1e9 / peaks.get("tf32", np.nan),
            **device_memory(),
        },
    )


def bench_epochs(record, setup, peaks, sizes, budget, big_batch):
    _, encoder, x, made = setup
    stats = models.DataStats.from_encoded(encoder.layout, x)
    for index, (kind, backbone) in enumerate(made.items()):
        # An equal part of what is left for this backbone and the next ones.
        share = budget / (len(made) - index)
        began = time.perf_counter()
        epochs_one(record, kind, backbone, x, stats, peaks, sizes, share, big_batch)
        budget -= time.perf_counter() - began


def time_epoch(backbone, data):
    """Seconds of the first (compiling) epoch and of the next one."""
    epoch = jax.jit(backbone.epoch)
    state = backbone.init(jax.random.key(0))
    start = time.perf_counter()
    state, _ = epoch(state, data, jax.random.key(0), None)
    jax.block_until_ready(state)
    first = time.perf_counter() - start
    start = time.perf_counter()
    state, metrics = epoch(state, data, jax.random.key(1), None)
    jax.block_until_ready((state, metrics))
    return first, time.perf_counter() - start


def epochs_one(record, kind, backbone, x, stats, peaks, sizes, budget, big_batch):
    """The rows ladder of one backbone at batch 500, then one big-batch epoch."""
    rng = np.random.default_rng(0)
    params = backbone.init(jax.random.key(0)).params
    largest = {}

    def add(model, rows, first, seconds):
        steps = flops.epoch_steps(model, rows)
        work = flops.step_flops(model, params) * steps
        record.add(
            "epochs",
            {
                "kind": kind,
                "rows": rows,
                "batch": model.config.batch_size,
                "seconds": seconds,
                "first_epoch_s": first,
                "steps": steps,
                "tflops": work / seconds / 1e12,
                "share_tf32": work / seconds / 1e9 / peaks.get("tf32", np.nan),
                **device_memory(),
            },
        )

    def run(rows):
        began = time.perf_counter()
        data = jnp.asarray(x[rng.integers(0, len(x), rows)])
        largest["data"] = data
        first, seconds = time_epoch(backbone, data)
        add(backbone, rows, first, seconds)
        return time.perf_counter() - began - (first - seconds)  # all but compiling

    ladder(sizes["epoch_start"], sizes["epoch_max"], 4, 4.0, budget * 0.75, run)
    if not (big_batch and largest):
        return
    config = dataclasses.replace(backbone.config, batch_size=big_batch)
    make = models.make_gan if kind == "gan" else models.make_vae
    big = make(backbone.layout, stats, config)
    data = largest.pop("data")
    try:
        add(big, len(data), *time_epoch(big, data))
    except Exception as error:  # noqa: BLE001 (an OOM skips this figure)
        if not out_of_memory(error):
            raise


def bench_audit(record, setup, peaks, sizes, budget):
    df, encoder, _, _ = setup
    metric = encoder.to_metric(df)
    numeric = [c.start for c in encoder.metric_space.columns if c.kind == "numeric"]
    columns = encoder.metric_space.columns
    rng = np.random.default_rng(0)
    d = metric.shape[1]

    def rows_of(count):
        drawn = metric[rng.integers(0, len(metric), count)].astype(np.float32)
        drawn[:, numeric] += 0.05 * rng.normal(size=(count, len(numeric)))
        return drawn

    deadline = time.perf_counter() + budget
    start_rows = sizes["audit_start"]
    queries, reference = rows_of(start_rows), rows_of(start_rows)
    blocks = {}
    for shape in ((256, 2048), (2048, 16384)):
        search = dict(query_block=shape[0], reference_block=shape[1])
        audit.nearest_neighbors(queries, reference, **search)  # compile
        began = time.perf_counter()
        audit.nearest_neighbors(queries, reference, **search)
        blocks[shape] = time.perf_counter() - began
    best = min(blocks, key=blocks.get)
    search = dict(query_block=best[0], reference_block=best[1])
    record.add(
        "audit",
        {
            "what": "block shapes",
            "rows": start_rows,
            "seconds": {f"{q}x{r}": s for (q, r), s in blocks.items()},
            "chosen": f"{best[0]}x{best[1]}",
        },
    )
    timings = {}

    def run(rows):
        start = time.perf_counter()
        syn, train = rows_of(rows), rows_of(rows)
        began = time.perf_counter()
        audit.nearest_neighbors(syn, train, **search)
        first = time.perf_counter() - began
        began = time.perf_counter()
        found = audit.nearest_neighbors(syn, train, **search)
        seconds = time.perf_counter() - began
        timings[rows] = seconds
        work = 2.0 * rows * rows * (d + 1)
        record.add(
            "audit",
            {
                "what": "dcr",
                "rows": rows,
                "d": d,
                "seconds": seconds,
                "first_call_s": first,
                "median_dcr": float(np.median(found.distance)),
                "tflops": work / seconds / 1e12,
                "share_float32": work / seconds / 1e9 / peaks.get("float32", np.nan),
                **device_memory(),
            },
        )
        return time.perf_counter() - start - (first - seconds)  # all but compiling

    # Rows x 2, pairs x 4.
    ladder(start_rows, sizes["audit_max"], 2, 4.0, budget * 0.55, run)

    # The whole audit: about 8 searches of n x n at k <= 2, plus compiling a
    # few shapes; pick the largest measured size whose prediction fits.
    left = deadline - time.perf_counter()
    fitting = [r for r, s in timings.items() if 8 * s + sizes["compiles_s"] < left]
    if not fitting:
        return
    rows = max(fitting)
    syn, train, hold = rows_of(rows), rows_of(rows), rows_of(rows)
    began = time.perf_counter()
    report = audit.audit_privacy(syn, train, hold, columns, seed=0, **search)
    seconds = time.perf_counter() - began
    record.add(
        "audit",
        {
            "what": "audit_privacy",
            "rows": rows,
            "d": d,
            "seconds_with_compile": seconds,
            "dcr_median": report.dcr_median,
            "mia_density_auc": report.mia_density_auc,
            **device_memory(),
        },
    )


# ------------------------------------------------------------------ output
def _gib(row: dict) -> str:
    return f"{row['peak_gib']:.1f}" if "peak_gib" in row else ""


def markdown(data: dict) -> str:
    meta, peak = data["meta"], data["peak"]
    lines = [
        f"# Accelerator check: {meta['device']}",
        "",
        f"jax {meta['jax']} ({meta['backend']}), {meta['host']}; elapsed "
        f"{meta.get('elapsed_s', 0):.0f} s of a {meta['budget']:.0f} s budget. "
        f"Table: heart_disease_uci (embedded) resampled; encoded width "
        f"{meta.get('width', '?')}, metric width {meta.get('metric_width', '?')}.",
        "",
        "Matmul peak (square "
        + str(peak.get("size", "?"))
        + "): "
        + ", ".join(
            f"{name} {peak[f'{name}_gflops'] / 1e3:,.1f} TFLOP/s"
            for name in ("float32", "tf32", "bf16")
            if f"{name}_gflops" in peak
        )
        + ".",
        "",
        "| part | model | size | time | rate | TFLOP/s | share of peak "
        "| device memory, peak so far (GiB) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in data["sampling"]:
        if row.get("what") == "host":
            lines.append(
                f"| sampling, host | {row['kind'].upper()} | batch {row['batch']:,} "
                f"| | copy {row['copy_rows_per_s']:,.0f} rows/s, decode "
                f"{row['decode_rows_per_s']:,.0f} rows/s | | | |"
            )
            continue
        name = "sampling, compact" if row.get("what") == "compact" else "sampling"
        lines.append(
            f"| {name} | {row['kind'].upper()} | batch {row['batch']:,} "
            f"| {row['seconds'] * 1e3:,.1f} ms | {row['rows_per_s']:,.0f} rows/s "
            f"| {row['tflops']:.2f} | {100 * row['share_tf32']:.1f} % of TF32 "
            f"| {_gib(row)} |"
        )
    for row in data["epochs"]:
        lines.append(
            f"| epoch | {row['kind'].upper()} | {row['rows']:,} rows, batch "
            f"{row['batch']:,} ({row['steps']:,} steps) | {row['seconds']:.2f} s "
            f"| {row['rows'] / row['seconds']:,.0f} rows/s | {row['tflops']:.2f} "
            f"| {100 * row['share_tf32']:.1f} % of TF32 "
            f"| {_gib(row)} |"
        )
    for row in data["audit"]:
        if row["what"] == "block shapes":
            times = ", ".join(f"{k}: {v:.2f} s" for k, v in row["seconds"].items())
            lines.append(
                f"| audit, block shapes | | {row['rows']:,} × {row['rows']:,} "
                f"| {times} | chose {row['chosen']} | | | |"
            )
        elif row["what"] == "dcr":
            lines.append(
                f"| audit, exact DCR | k = 1 | {row['rows']:,} × {row['rows']:,}, "
                f"d = {row['d']} | {row['seconds']:.2f} s "
                f"| {row['rows'] ** 2 / row['seconds'] / 1e9:,.1f} G pairs/s "
                f"| {row['tflops']:.2f} | {100 * row['share_float32']:.1f} % of FP32 "
                f"| {_gib(row)} |"
            )
        else:
            lines.append(
                f"| audit, whole `audit_privacy` | | 3 × {row['rows']:,} rows, "
                f"d = {row['d']} | {row['seconds_with_compile']:.1f} s (with "
                f"compile) | | | | {_gib(row)} |"
            )
    lines += [
        "",
        "Sampling: `backbone.sample(params, key, n=batch, hard=True)` jitted, best "
        "of 3 after a compiling call, untrained parameters (the cost does not "
        "depend on their values). Epochs: one jitted epoch after a compiling "
        "one. FLOPs are dense-layer FLOPs from the parameter trees (forward and "
        "backward for training); the search counts `2 n m (d + 1)` and multiplies "
        "at full float32 precision, so its share is of the FP32 peak.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a CPU")
    parser.add_argument("--budget", type=float, default=None, help="seconds in all")
    parser.add_argument("--big-batch", type=int, default=None)
    parser.add_argument(
        "--parts", default="peak,sampling,epochs,audit", help="a subset, in order"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    budget = args.budget or (90.0 if args.quick else 390.0)
    big_batch = (
        args.big_batch
        if args.big_batch is not None
        else (2_000 if args.quick else 16_000)
    )
    out = Path(os.environ.get("OUT") or "gpu-results")
    device = jax.devices()[0]
    meta = {
        "device": f"{device.device_kind} ({device.platform})",
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "host": f"{os.cpu_count()} CPUs, {platform.machine()}",
        "budget": budget,
        "quick": args.quick,
    }
    record = Recorder(out, meta)
    parts = args.parts.split(",")

    peaks = {}
    if "peak" in parts:
        peaks = bench_peak(record, sizes["matmul"], SHARES["peak"] * budget)
    setup = heart_setup()
    meta["width"] = int(setup[2].shape[1])
    meta["metric_width"] = int(setup[1].metric_space.width)
    spent = time.perf_counter() - START
    rest = sum(SHARES[p] for p in parts if p != "peak")
    left = max(budget - spent, 0.0)
    for part in ("sampling", "epochs", "audit"):
        if part not in parts:
            continue
        share = left * SHARES[part] / rest
        began = time.perf_counter()
        if part == "sampling":
            bench_sampling(record, setup, peaks, sizes, share)
        elif part == "epochs":
            bench_epochs(record, setup, peaks, sizes, share, big_batch)
        else:
            bench_audit(record, setup, peaks, sizes, share)
        print(f"{part}: {time.perf_counter() - began:.0f} s of {share:.0f}", flush=True)
    record.write()
    print(markdown(record.data))


if __name__ == "__main__":
    main()
