"""Exact DCR at scale: the blocked JAX search beside scikit-learn, in one run.

Synthetic and training rows are resampled (with replacement) from a real table in
the metric space, with Gaussian noise on the numeric coordinates so that rows are
not all exact repeats. Each method runs in its own subprocess, which reports its
wall time and its peak resident memory (``VmHWM``, the high-water mark of
``ru_maxrss`` for this address space) before and after the search; the increase
is the method's own footprint. The machine's float32 matmul
peak is measured in the same run (a jitted 4096 x 4096 @ 4096 x 4096, best of a
few, before and after the methods), and every method's throughput is counted as
``2 n m d`` FLOPs (the matmul of the distance expansion; for the KD-tree this is a
nominal figure, it does not multiply matrices). On a shared machine wall-clock
rates swing with the other jobs, so each rate is also given per CPU second of
the process (all its threads), against the matmul's rate per CPU second.

Usage::

    python benchmarks/bench_audit.py                 # 100,000 x 100,000
    python benchmarks/bench_audit.py --rows 20000    # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (str(ROOT), str(ROOT / "benchmarks")):  # run from a checkout
    if path not in sys.path:
        sys.path.insert(0, path)
DATA = Path(os.environ.get("PSYGENTAB_DATA", ROOT.parent / "shared" / "data"))

# key: (label, kind, options)
METHODS = {
    "jax": ("psygentab_jax, k=1 (+1 candidate re-ranked)", "jax", {"extra": 1}),
    "jax-no-margin": ("psygentab_jax, k=1 (no extra candidate)", "jax", {"extra": 0}),
    "brute": ("scikit-learn brute", "sklearn", {"algorithm": "brute"}),
    "kd_tree": ("scikit-learn kd_tree", "sklearn", {"algorithm": "kd_tree"}),
}


def max_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB.

    Linux's ``VmHWM`` belongs to the address space, which ``exec`` replaces; a
    child's ``ru_maxrss`` instead starts from its parent's size at the fork, so
    it would credit each method with the parent's memory.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_data(table: str, rows: int, noise: float, seed: int, out: Path) -> dict:
    """Resample a real table in the metric space; save synthetic and train rows."""
    import pandas as pd

    import psygentab_jax as pj

    df = pd.read_csv(DATA / f"{table}.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = pj.TableEncoder(pj.infer_schema(df)).fit(df)
        metric = encoder.to_metric(df)
    numeric = [c.start for c in encoder.metric_space.columns if c.kind == "numeric"]

    rng = np.random.default_rng(seed)
    for name in ("synthetic", "train"):
        np.save(out / f"{name}.npy", resample(metric, rows, numeric, noise, rng))
    return {"table": table, "d": metric.shape[1], "numeric": len(numeric)}


def resample(metric, rows: int, numeric, noise: float, rng) -> np.ndarray:
    """``rows`` rows drawn with replacement from ``metric``, float32, with Gaussian
    noise of scale ``noise`` added to the ``numeric`` coordinates."""
    drawn = np.asarray(metric, np.float32)[rng.integers(0, len(metric), rows)]
    drawn[:, numeric] += noise * rng.normal(size=(rows, len(numeric)))
    return drawn


def matmul_peak(size: int = 4096, repeats: int = 5) -> tuple[float, float]:
    """Best GFLOP/s of a jitted float32 ``size x size`` matmul: per wall second and
    per CPU second (all threads of the process)."""
    import flops  # imports jax: kept out of the scikit-learn workers

    peak = flops.matmul_peak(size, repeats=repeats)
    return peak["wall_gflops"], peak["cpu_gflops"]


def worker(method: str, options: dict, data: Path, blocks: tuple[int, int]) -> dict:
    """Run one method in this (fresh) process; report time, memory, distances."""
    if method == "jax":
        import jax  # noqa: F401  (import cost stays out of the measured increase)

        from psygentab_jax.audit import nearest_neighbors
    else:
        from sklearn.neighbors import NearestNeighbors
    synthetic = np.load(data / "synthetic.npy")
    train = np.load(data / "train.npy")
    before = max_rss_mb()

    search = dict(k=1, query_block=blocks[0], reference_block=blocks[1], **options)
    start = time.perf_counter()
    if method == "jax":
        nearest_neighbors(synthetic, train, **search)
        first = time.perf_counter() - start
        # Second call: compiled, the steady-state time.
        start, cpu = time.perf_counter(), time.process_time()
        found = nearest_neighbors(synthetic, train, **search)
        seconds = time.perf_counter() - start
        distance = found.distance[:, 0]
    else:
        cpu = time.process_time()
        nn = NearestNeighbors(n_neighbors=1, **options).fit(train)
        distance = nn.kneighbors(synthetic)[0][:, 0]
        seconds = first = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu

    np.save(data / f"distance_{os.getpid()}.npy", distance.astype(np.float32))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "first_call": first,
        "rss_before_mb": before,
        "rss_peak_mb": max_rss_mb(),
        "distances": str(data / f"distance_{os.getpid()}.npy"),
    }


def run_method(name, method, options, data, blocks, timeout) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        json.dumps([method, options, str(data), list(blocks)]),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=True
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "timeout": timeout}
    except subprocess.CalledProcessError as error:
        return {"name": name, "error": error.stderr.strip().splitlines()[-1]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["name"] = name
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--table", default="covid_testing")
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--query-block", type=int, default=256)
    parser.add_argument("--reference-block", type=int, default=2048)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        method, options, data, blocks = json.loads(args.worker)
        result = worker(method, options, Path(data), tuple(blocks))
        print(json.dumps(result))
        return

    blocks = (args.query_block, args.reference_block)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        info = make_data(args.table, args.rows, args.noise, 0, data)
        flops = 2.0 * args.rows * args.rows * info["d"]
        peaks = [matmul_peak()]
        results = [
            run_method(*METHODS[key], data, blocks, args.timeout)
            for key in args.methods.split(",")
        ]
        peaks.append(matmul_peak())
        brute = [r for r in results if r["name"] == METHODS["brute"][0]]
        reference = np.load(brute[0]["distances"]) if brute else None
        for r in results:
            if "distances" in r and reference is not None and "seconds" in r:
                gap = np.abs(np.load(r["distances"]) - reference)
                r["max_gap"] = float(np.max(gap))

    peak = max(p[0] for p in peaks)
    peak_cpu = max(p[1] for p in peaks)
    load = os.getloadavg()
    print(
        f"\nExact DCR, {args.rows:,} synthetic x {args.rows:,} training rows of "
        f"{info['table']} in the metric space (d = {info['d']}, noise "
        f"{args.noise} on {info['numeric']} numeric coordinates); "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (1 / 5 / 15 min) at the end; blocks {blocks[0]} x "
        f"{blocks[1]}.\nfloat32 matmul peak: {peak:.1f} GFLOP/s per wall second "
        f"(best of {peaks[0][0]:.1f} before, {peaks[1][0]:.1f} after), "
        f"{peak_cpu:.1f} GFLOP/s per CPU second. Counted work: 2 n m d = "
        f"{flops:.3g} FLOP.\n"
    )
    print(
        "| method | wall (s) | CPU (s) | first call (s) | GFLOP/s | % of peak (wall) "
        "| % of peak (CPU time) | peak RSS (MB) | RSS increase (MB) "
        "| max abs gap vs brute |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "seconds" not in r:
            why = f"timed out after {r['timeout']:.0f} s" if "timeout" in r else r
            print(f"| {r['name']} | {why} | | | | | | | | |")
            continue
        rate = flops / r["seconds"] / 1e9
        rate_cpu = flops / r["cpu_seconds"] / 1e9
        gap = r.get("max_gap")
        print(
            f"| {r['name']} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} "
            f"| {r['first_call']:.2f} | {rate:.1f} | {100 * rate / peak:.0f} % "
            f"| {100 * rate_cpu / peak_cpu:.0f} % | {r['rss_peak_mb']:.0f} "
            f"| {r['rss_peak_mb'] - r['rss_before_mb']:.0f} "
            f"| {'' if gap is None else f'{gap:.1e}'} |"
        )


if __name__ == "__main__":
    main()
