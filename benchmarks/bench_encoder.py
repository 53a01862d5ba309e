"""Encoder speed: psygentab's TableEncoder beside CTGAN's DataTransformer.

Both transforms learn the same columns of ``covid_testing`` (every column but the
identifier ``subject_id``), resampled with a fixed seed to ``--rows`` rows. For
ours the script times the fit, the dense ``encode`` (fresh array and reused
``out=`` buffer), ``encode_compact``, the dense ``decode`` and ``decode_compact``;
for CTGAN ``fit``, ``transform`` and ``inverse_transform``. Times are wall-clock
medians over ``--repeats`` runs (CTGAN: ``--peer-repeats``).

CTGAN fits one ``BayesianGaussianMixture`` per numeric column on every row, so on a
million rows its fit and transform take about a quarter of an hour here. By default
it is measured on ``--peer-rows`` rows (the first rows of the same resample) and its
fit time is scaled linearly to ``--rows``; the table says so. Pass
``--peer-rows 0`` to measure it on all rows.

Run with the environment that has ctgan installed::

    python benchmarks/bench_encoder.py                 # 1,000,000 rows
    python benchmarks/bench_encoder.py --rows 100000 --peer-rows 20000

The markdown table is printed and written to ``benchmarks/results/encoder.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import psygentab_jax as pg

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PSYGENTAB_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results" / "encoder.md"


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall-clock seconds of ``repeats`` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), result


def load_rows(rows: int, seed: int) -> tuple[pd.DataFrame, pg.Schema]:
    table = pd.read_csv(DATA / "covid_testing.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the identifier warning
        identifiers = pg.infer_schema(table).identifiers
    table = table.drop(columns=identifiers)
    frame = table.sample(n=rows, replace=True, random_state=seed)
    frame = frame.reset_index(drop=True)
    return frame, pg.infer_schema(frame)


def bench_ours(frame: pd.DataFrame, schema: pg.Schema, repeats: int) -> dict:
    n = len(frame)
    fit, encoder = timed(lambda: pg.TableEncoder(schema).fit(frame), repeats)
    encode, dense = timed(lambda: encoder.encode(frame), repeats)
    buffer = np.empty_like(dense)
    encode_out, _ = timed(lambda: encoder.encode(frame, out=buffer), repeats)
    compact, (values, codes) = timed(lambda: encoder.encode_compact(frame), repeats)
    decode, back = timed(lambda: encoder.decode(dense), repeats)
    decode_compact, _ = timed(lambda: encoder.decode_compact(values, codes), repeats)
    return {
        "fit_s": fit,
        "encode": n / encode,
        "encode_out": n / encode_out,
        "encode_compact": n / compact,
        "decode": n / decode,
        "decode_compact": n / decode_compact,
        "width": encoder.layout.width,
        "compact_bytes": values.nbytes + codes.nbytes,
        "dense_bytes": dense.nbytes,
        "round_trip": bool(back.equals(frame)),
    }


def bench_ctgan(frame: pd.DataFrame, schema: pg.Schema, repeats: int) -> dict:
    from ctgan.data_transformer import DataTransformer

    # A column constant in a small resample (``test_id``) is discrete to CTGAN too.
    discrete = [c.name for c in schema.columns if c.kind in ("categorical", "constant")]
    n = len(frame)

    def fit():
        transformer = DataTransformer()
        transformer.fit(frame, discrete)
        return transformer

    fit_s, transformer = timed(fit, repeats)
    transform_s, encoded = timed(lambda: transformer.transform(frame), repeats)
    inverse_s, _ = timed(lambda: transformer.inverse_transform(encoded), repeats)
    return {
        "fit_s": fit_s,
        "encode": n / transform_s,
        "decode": n / inverse_s,
        "width": encoded.shape[1],
        "discrete": discrete,
    }


def table(rows: int, peer_rows: int, ours: dict, theirs: dict, args) -> str:
    scale = rows / peer_rows
    scaled = peer_rows != rows
    note = f" (measured on {peer_rows:,} rows, ×{scale:g})" if scaled else ""
    their_fit = theirs["fit_s"] * scale

    def rate(value: float) -> str:
        return f"{value:,.0f}"

    lines = [
        f"Encoder on `covid_testing` resampled to {rows:,} rows (seed {args.seed}), "
        f"11 learned columns ({len(theirs['discrete'])} categorical), "
        "`subject_id` dropped for both.",
        "",
        "| step | psygentab TableEncoder | CTGAN DataTransformer | speedup |",
        "|---|---:|---:|---:|",
        f"| fit (s) | {ours['fit_s']:.2f} | {their_fit:.1f}{note} | "
        f"{their_fit / ours['fit_s']:.0f}× |",
    ]
    for label, key in [
        ("encode, dense, fresh array (rows/s)", "encode"),
        ("encode, dense, `out=` buffer (rows/s)", "encode_out"),
        ("encode_compact (rows/s)", "encode_compact"),
    ]:
        lines.append(
            f"| {label} | {rate(ours[key])} | {rate(theirs['encode'])} "
            f"(`transform`{', ' + format(peer_rows, ',') + ' rows' if scaled else ''})"
            f" | {ours[key] / theirs['encode']:.0f}× |"
        )
    for label, key in [
        ("decode, dense (rows/s)", "decode"),
        ("decode_compact (rows/s)", "decode_compact"),
    ]:
        lines.append(
            f"| {label} | {rate(ours[key])} | {rate(theirs['decode'])} "
            f"(`inverse_transform`"
            f"{', ' + format(peer_rows, ',') + ' rows' if scaled else ''})"
            f" | {ours[key] / theirs['decode']:.0f}× |"
        )
    load = os.getloadavg()
    lines += [
        "",
        f"Encoded width: ours {ours['width']} float32 "
        f"({ours['dense_bytes'] / 2**20:,.0f} MiB dense, "
        f"{ours['compact_bytes'] / 2**20:,.0f} MiB compact); "
        f"CTGAN {theirs['width']} float64. "
        f"`decode(encode(df))` equals the input: {ours['round_trip']}.",
        "",
        f"Wall-clock medians of {args.repeats} runs for ours, "
        f"{args.peer_repeats} for CTGAN; rates are rows per second. CTGAN's fit time "
        + (
            f"was measured on the first {peer_rows:,} rows of the same resample and "
            "scaled linearly (its per-column mixture fit is linear in rows); its "
            "rates are those measured on those rows."
            if scaled
            else "was measured on all rows."
        ),
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, shared with other "
        f"jobs (load average {load[0]:.1f} at the end of the run); pandas "
        f"{pd.__version__}, numpy {np.__version__}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--peer-rows",
        type=int,
        default=100_000,
        help="rows CTGAN is measured on (0: all rows); its fit time is scaled",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peer-repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    frame, schema = load_rows(args.rows, args.seed)
    peer_rows = min(args.peer_rows or args.rows, args.rows)
    ours = bench_ours(frame, schema, args.repeats)
    theirs = bench_ctgan(frame.iloc[:peer_rows].copy(), schema, args.peer_repeats)
    text = table(args.rows, peer_rows, ours, theirs, args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(args.out)


if __name__ == "__main__":
    main()
