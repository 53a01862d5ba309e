"""Backbones against SDV's CTGAN and TVAE: epoch time, FLOP rate, quality, sampling.

Run under the benchmark environment (torch CPU, sdv, sdmetrics) with this project
installed in it::

    .venv-bench/bin/python benchmarks/bench_models.py [--quick] [--tables ...]

What is measured, per table:

* seconds per epoch at SDV's default sizes and batch 500, ours (jitted epoch,
  compile excluded) and SDV's (ctgan's epoch loop stamped from the inside, first
  epoch excluded, so that preprocessing is left out);
* the achieved FLOP rate of a training step as a fraction of the float32 matmul
  peak measured in the same run (a 4096^3 ``jnp.dot``). FLOPs are counted for the
  dense layers only: a pass over a network of layers (fan_in, fan_out) costs
  ``2 * rows * sum(fan_in * fan_out)`` forward and three times that forward plus
  backward. A GAN step = one critic step (generator forward on b rows; critic
  forward + backward on the real, the fake and the interpolated packs, b / pac
  rows each, the gradient penalty's double backward counted as one more pass) plus
  a generator step (generator and critic forward + backward). A VAE step = encoder
  and decoder forward + backward on b rows. SDV's counts use its own encoded width;
* fit wall time until the generated rows reach the sdmetrics QualityReport score
  of SDV's TVAE with its defaults (300 epochs), checked every ``--check-every``
  epochs on ``len(table)`` sampled rows (checks excluded from the time);
* sampling rows/s for 1,000,000 rows decoded to a DataFrame, against SDV's
  ``sample`` (timed on ``--sdv-sample-rows``, 100,000 by default, as it is slow),
  and the generator's part against the matmul-peak bound for its
  forward FLOPs per row.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import flops  # benchmarks/flops.py: this script's folder is on sys.path
import jax
import jax.numpy as jnp
import pandas as pd

import psygentab_jax as pg
from psygentab_jax import models

DATA = os.environ.get("PSYGENTAB_DATA", "/work/shared/data")


def matmul_peak(size: int = 4096, repeats: int = 5) -> float:
    """Float32 matmul FLOP/s of this machine, best of ``repeats``."""
    return flops.matmul_peak(size, repeats=repeats)["wall_gflops"] * 1e9


def mlp_macs(widths) -> int:
    """Sum of fan_in * fan_out over consecutive widths."""
    return int(sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=False)))


def generator_macs(d, c, e=128, hidden=(256, 256)) -> int:
    macs, width = 0, e + c
    for h in hidden:
        macs += width * h
        width += h
    return macs + width * d


def critic_macs(d, c, pac=10, hidden=(256, 256)) -> int:
    return mlp_macs([pac * (d + c), *hidden, 1])


def gan_step_flops(d, c, b=500, pac=10) -> float:
    g, k = generator_macs(d, c), critic_macs(d, c, pac)
    critic_step = 2 * b * g + 4 * 3 * 2 * (b // pac) * k
    generator_step = 3 * 2 * b * g + 3 * 2 * (b // pac) * k
    return float(critic_step + generator_step)


def vae_step_flops(d, c, b=500, e=128) -> float:
    encoder = mlp_macs([d + c, 128, 128]) + 2 * 128 * e
    decoder = mlp_macs([e + c, 128, 128, d])
    return float(3 * 2 * b * (encoder + decoder))


def time_ours(backbone, x, epochs: int) -> float:
    """Seconds per epoch of the jitted epoch, compile excluded."""
    epoch = jax.jit(backbone.epoch)
    data = jnp.asarray(x)
    state = backbone.init(jax.random.key(0))
    state, _ = epoch(state, data, jax.random.key(0), None)
    jax.block_until_ready(state)
    start = time.perf_counter()
    for i in range(epochs):
        state, metrics = epoch(state, data, jax.random.key(i + 1), None)
    jax.block_until_ready((state, metrics))
    return (time.perf_counter() - start) / epochs


def sdv_metadata(df):
    from sdv.metadata import Metadata

    return Metadata.detect_from_dataframes({"table": df}, infer_keys=None)


def sdv_synth(kind, metadata, epochs):
    from sdv.single_table import CTGANSynthesizer, TVAESynthesizer

    cls = CTGANSynthesizer if kind == "gan" else TVAESynthesizer
    return cls(metadata, epochs=epochs, batch_size=500, enable_gpu=False)


def sdv_sample(synth, n):
    frame = synth.sample(n)
    return frame["table"] if isinstance(frame, dict) else frame


class _EpochClock:
    """Stands in for ``tqdm`` inside ctgan's training loops and stamps each epoch."""

    stamps: list[float] = []

    def __init__(self, iterable, **kwargs):
        self.iterable = iterable

    def __iter__(self):
        for item in self.iterable:
            _EpochClock.stamps.append(time.perf_counter())
            yield item
        _EpochClock.stamps.append(time.perf_counter())

    def set_description(self, *args, **kwargs):
        pass


def time_sdv(kind, df, metadata, epochs: int):
    """Seconds per epoch of SDV's training loop (first epoch excluded), and its
    encoded (d, c)."""
    import ctgan.synthesizers.ctgan as ctgan_module
    import ctgan.synthesizers.tvae as tvae_module

    module = ctgan_module if kind == "gan" else tvae_module
    original, module.tqdm = module.tqdm, _EpochClock
    _EpochClock.stamps = []
    try:
        synth = sdv_synth(kind, metadata, epochs)
        synth.fit({"table": df})
    finally:
        module.tqdm = original
    stamps = _EpochClock.stamps
    seconds = (stamps[-1] - stamps[1]) / (len(stamps) - 2)
    model = synth._model
    if kind == "gan":
        d = model._transformer.output_dimensions
        c = model._data_sampler.dim_cond_vec()
    else:
        d, c = model.transformer.output_dimensions, 0
    return seconds, d, c


def quality(real, synthetic, metadata_dict) -> float:
    from sdmetrics.reports.single_table import QualityReport

    report = QualityReport()
    report.generate(real, synthetic, metadata_dict, verbose=False)
    return float(report.get_score())


def fit_until(backbone, encoder, df, x, metadata_dict, goal, max_epochs, every):
    """Trains until the quality score reaches ``goal``; returns (seconds, epochs,
    score) with the quality checks' time left out."""
    epoch = jax.jit(backbone.epoch)
    data = jnp.asarray(x)
    state = backbone.init(jax.random.key(0))
    trained, score, done = 0.0, float("nan"), 0
    for i in range(max_epochs):
        start = time.perf_counter()
        state, metrics = epoch(
            state, data, jax.random.fold_in(jax.random.key(1), i), None
        )
        jax.block_until_ready(state)
        trained += time.perf_counter() - start
        done = i + 1
        if done % every == 0 or done == max_epochs:
            rows = models.generate(
                backbone, state.params, jax.random.key(done), len(df)
            )
            score = quality(df, encoder.decode(rows), metadata_dict)
            if score >= goal:
                break
    return trained, done, score


def sampling(backbone, encoder, params, n, peak, d, c):
    chunk = 100_000
    models.generate(backbone, params, jax.random.key(0), chunk, batch_size=chunk)
    start = time.perf_counter()
    rows = models.generate(backbone, params, jax.random.key(1), n, batch_size=chunk)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    frame = encoder.decode(rows)
    decoded = time.perf_counter() - start
    assert len(frame) == n
    if backbone.name == "gan":
        forward = 2 * generator_macs(d, c)
    else:
        forward = 2 * mlp_macs([128 + c, 128, 128, d])
    bound = peak / forward
    return {
        "rows_per_s": n / (generated + decoded),
        "generator_rows_per_s": n / generated,
        "decode_s": decoded,
        "generator_fraction_of_peak_bound": (n / generated) / bound,
    }


def run_table(name, args, peak, out):
    df = pd.read_csv(os.path.join(DATA, f"{name}.csv"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = pg.infer_schema(df)
    df = df.drop(columns=schema.identifiers)
    schema = pg.infer_schema(df)
    encoder = pg.TableEncoder(schema).fit(df)
    x = encoder.encode(df)
    stats = models.DataStats.from_encoded(encoder.layout, x)
    d = encoder.layout.width
    c = models.CondSpec.from_layout(encoder.layout).width
    metadata = sdv_metadata(df)
    metadata_dict = metadata.to_dict()["tables"]["table"]
    steps = -(-len(df) // 500)
    result = {"rows": len(df), "encoded_width": d, "cond_width": c, "steps": steps}

    backbones = {
        "gan": models.make_gan(encoder.layout, stats),
        "vae": models.make_vae(encoder.layout, stats),
    }
    for kind, backbone in backbones.items():
        seconds = time_ours(backbone, x, args.timing_epochs)
        flops = (gan_step_flops if kind == "gan" else vae_step_flops)(d, c)
        sdv_seconds, sd, sc = time_sdv(kind, df, metadata, args.sdv_timing_epochs)
        sdv_flops = (gan_step_flops if kind == "gan" else vae_step_flops)(sd, sc)
        sdv_steps = max(len(df) // 500, 1) if kind == "gan" else steps
        result[kind] = {
            "ours_s_per_epoch": seconds,
            "ours_step_gflop": flops / 1e9,
            "ours_fraction_of_peak": flops * steps / seconds / peak,
            "sdv_s_per_epoch": sdv_seconds,
            "sdv_encoded_width": sd,
            "sdv_step_gflop": sdv_flops / 1e9,
            "sdv_fraction_of_peak": sdv_flops * sdv_steps / sdv_seconds / peak,
        }
        out(name, kind, result[kind])

    if name in args.quality_tables:
        tvae = sdv_synth("vae", metadata, args.quality_epochs)
        start = time.perf_counter()
        tvae.fit({"table": df})
        sdv_fit = time.perf_counter() - start
        goal = quality(df, sdv_sample(tvae, len(df)), metadata_dict)
        result["quality"] = {
            "sdv_tvae_epochs": args.quality_epochs,
            "sdv_tvae_fit_s": sdv_fit,
            "goal": goal,
        }
        for kind, backbone in backbones.items():
            seconds, epochs, score = fit_until(
                backbone,
                encoder,
                df,
                x,
                metadata_dict,
                goal,
                args.max_epochs,
                args.check_every,
            )
            result["quality"][kind] = {
                "fit_s": seconds,
                "epochs": epochs,
                "score": score,
                "reached": score >= goal,
            }
        out(name, "quality", result["quality"])

    for kind, backbone in backbones.items():
        state = backbone.init(jax.random.key(0))
        state, _ = jax.jit(backbone.epoch)(
            state, jnp.asarray(x), jax.random.key(0), None
        )
        result[kind]["sampling"] = sampling(
            backbone, encoder, state.params, args.sample_rows, peak, d, c
        )
        synth = sdv_synth(kind, metadata, 1)
        synth.fit({"table": df})
        start = time.perf_counter()
        frame = sdv_sample(synth, args.sdv_sample_rows)
        result[kind]["sampling"]["sdv_rows_per_s"] = len(frame) / (
            time.perf_counter() - start
        )
        out(name, f"{kind} sampling", result[kind]["sampling"])
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tables", nargs="+", default=["heart_disease_uci", "covid_testing"]
    )
    parser.add_argument("--quality-tables", nargs="*", default=["heart_disease_uci"])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--timing-epochs", type=int, default=10)
    parser.add_argument("--sdv-timing-epochs", type=int, default=6)
    parser.add_argument("--quality-epochs", type=int, default=300)
    parser.add_argument("--max-epochs", type=int, default=600)
    parser.add_argument("--check-every", type=int, default=10)
    parser.add_argument("--sample-rows", type=int, default=1_000_000)
    parser.add_argument("--sdv-sample-rows", type=int, default=100_000)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.timing_epochs, args.sdv_timing_epochs = 3, 3
        args.quality_epochs, args.max_epochs, args.check_every = 20, 40, 10
        args.sample_rows, args.sdv_sample_rows = 100_000, 10_000

    import torch

    torch.manual_seed(0)
    lines = []

    def out(table, part, values):
        text = json.dumps(values, default=float)
        lines.append(f"{table} {part}: {text}")
        print(lines[-1], flush=True)

    peak = matmul_peak()
    out(
        "machine",
        "peak",
        {
            "matmul_gflops": peak / 1e9,
            "torch_threads": torch.get_num_threads(),
            "jax": jax.__version__,
            "devices": str(jax.devices()),
        },
    )
    results = {"peak_gflops": peak / 1e9, "args": vars(args)}
    for name in args.tables:
        results[name] = run_table(name, args, peak, out)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2, default=float)


if __name__ == "__main__":
    main()
