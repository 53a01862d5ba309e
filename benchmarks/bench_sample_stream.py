"""Streaming generation at scale: ``psygentab sample -n N --out FILE.parquet``.

A VAE (or GAN) is fitted on the embedded ``heart_disease_uci`` table under the
default constraints (``exact_match == 0`` among them, so every chunk is hashed and
filtered), or a given model file is used. Then, in this order:

* **generator**: the jitted draw of one chunk of compact hard rows (scalars and
  category codes), timed over ``--generator-chunks`` chunks, against the bound
  that the machine's float32 matmul peak puts on it. FLOPs per row are the dense
  layers of the network that emits a row (GAN generator, VAE decoder),
  ``2 * fan_in * fan_out`` each; the peak is a jitted 4096^3 matmul timed here.
* **decoded**: :meth:`Synthesizer.iter_samples` over ``--decoded-rows`` rows
  (default ``min(N, 20M)``): drawing, decoding to frames and the exact-match
  filter, with the device drawing chunk i + 1 while chunk i decodes, and no
  Parquet. This is the "rows/s before Parquet encoding".
* **file**: the real command, ``psygentab sample --model M -n N --out F.parquet``,
  in a subprocess whose resident memory is sampled every 0.2 s (``VmRSS``, and
  its ``VmHWM`` high-water mark); then the file is opened and its rows, row
  groups and columns checked.

Usage::

    .venv/bin/python benchmarks/bench_sample_stream.py              # N = 10^8
    .venv/bin/python benchmarks/bench_sample_stream.py -n 2000000   # a check

Markdown goes to stdout and ``benchmarks/results/sample_stream.md`` (``--out``),
raw numbers to ``--json`` when given. The Parquet file is deleted afterwards
unless ``--keep``; it takes about 7.5 bytes per row of disk (0.75 GB at 10^8).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):  # run from a checkout without installing
    if path not in sys.path:
        sys.path.insert(0, path)

import flops  # noqa: E402  (after the path set-up)

RESULTS = HERE / "results" / "sample_stream.md"


def fit_or_load(args, work: Path):
    from psygentab_jax import datasets
    from psygentab_jax._src.synthesizer import Synthesizer

    if args.model:
        return Synthesizer.load(args.model), Path(args.model)
    df = datasets.load("heart_disease_uci")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synth = Synthesizer(backbone=args.backbone, epochs=args.epochs, seed=0)
        synth.fit(df, target="disease")
    path = work / "model.psygentab"
    synth.save(path)
    return synth, path


def time_generator(synth, chunk_rows: int, chunks: int) -> float:
    """Rows/s of the jitted compact draw alone (no decoding), compile excluded."""
    import jax

    from psygentab_jax._src.synthesizer import SAMPLE_BLOCK, _chunk_plan

    blocks, group = _chunk_plan(chunk_rows, 1)
    draw = synth._compact_sampler(blocks, group, None)
    params, key = synth.params, jax.random.key(0)
    with jax.threefry_partitionable(False):
        jax.block_until_ready(draw(params, key, np.uint32(0), None))
        start = time.perf_counter()
        for i in range(chunks):
            out = draw(params, key, np.uint32((i + 1) * blocks), None)
        jax.block_until_ready(out)
    return chunks * blocks * SAMPLE_BLOCK / (time.perf_counter() - start)


def time_decoded(synth, rows: int, chunk_rows: int) -> dict:
    """Rows/s of :meth:`iter_samples` consumed to the end (frames, no file)."""
    for _ in synth.iter_samples(min(rows, chunk_rows), chunk_rows=chunk_rows):
        pass  # compile
    wall, cpu = time.perf_counter(), time.process_time()
    count = 0
    for frame in synth.iter_samples(rows, chunk_rows=chunk_rows, seed=1):
        count += len(frame)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert count == rows
    return {"rows": rows, "seconds": wall, "rows_per_s": rows / wall, "cpu_s": cpu}


def _status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# Runs the CLI, then reports the process's own high-water mark of resident memory
# (``VmHWM`` of /proc/self: the memory of this program since exec, not that of the
# parent it was forked from).
LAUNCH = """
import sys
from psygentab_jax import cli
code = cli.main(sys.argv[1:])
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print("peak_kb", line.split()[1], file=sys.stderr)
sys.exit(code)
"""


def stream_file(model: Path, out: Path, n: int, chunk_rows: int) -> dict:
    """Runs ``psygentab sample`` in a subprocess and samples its resident memory."""
    command = [
        sys.executable,
        "-c",
        LAUNCH,
        "sample",
        "--model",
        str(model),
        "-n",
        str(n),
        "--out",
        str(out),
        "--chunk-rows",
        str(chunk_rows),
    ]
    env = dict(
        os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    samples = []

    def watch():
        while child.poll() is None:
            rss, hwm = _status_kb(child.pid, "VmRSS"), _status_kb(child.pid, "VmHWM")
            if rss is not None:
                samples.append((time.perf_counter() - start, rss, hwm or rss))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, err = child.communicate()
    seconds = time.perf_counter() - start
    watcher.join()
    if child.returncode:
        raise RuntimeError(
            f"psygentab sample failed ({child.returncode}): {err[-2000:]}"
        )
    peak_kb = re.findall(r"peak_kb (\d+)", err)
    # The progress bar's last rate: rows over the time since the model was loaded
    # (compilation included, interpreter start-up and imports not).
    rates = re.findall(r"([\d,]+) rows/s", err)
    rss = np.asarray([s[1] for s in samples], float) / 1024
    hwm = max((s[2] for s in samples), default=0) / 1024
    # Memory in the second half against the first half: flat when bounded.
    half = len(rss) // 2
    return {
        "seconds": seconds,
        "rows_per_s": n / seconds,
        "peak_rss_mb": int(peak_kb[-1]) / 1024 if peak_kb else hwm,
        "sampled_hwm_mb": hwm,
        "rows_per_s_after_load": float(rates[-1].replace(",", "")) if rates else None,
        "rss_first_half_max_mb": float(rss[:half].max()) if half else float("nan"),
        "rss_second_half_max_mb": float(rss[half:].max()) if half else float("nan"),
        "rss_samples": len(samples),
        "command": " ".join(["psygentab", *command[3:]]),
    }


def check_file(path: Path, n: int) -> dict:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == n, (meta.num_rows, n)
    return {
        "rows": meta.num_rows,
        "row_groups": meta.num_row_groups,
        "columns": meta.num_columns,
        "bytes": path.stat().st_size,
    }


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jax

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "python": platform.python_version(),
    }


def markdown(result: dict) -> str:
    g, d, f, m = result["generator"], result["decoded"], result["file"], result["model"]
    bound = result["bound_rows_per_s"]
    f = dict(f, rows=result["n"])

    def row(stage, part):
        return (
            f"| {stage} | {part['rows']:,} | {part['seconds']:.1f} | "
            f"{part['rows_per_s']:,.0f} | {part['rows_per_s'] / bound:.2f} |"
        )

    lines = [
        "# Streaming generation: `psygentab sample -n N --out FILE.parquet`",
        "",
        f"Command: `{result['argv']}`. Machine: {result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores, JAX {result['machine']['jax']} "
        f"({result['machine']['backend']}); load average "
        f"{', '.join(f'{x:.1f}' for x in result['machine']['load_average'])} at the "
        f"start and {', '.join(f'{x:.1f}' for x in result['load_after'])} at the end.",
        "",
        f"Model: {m['backbone']} on heart_disease_uci, encoded width {m['width']}, "
        f"{len(m['constraints'])} constraints ({', '.join(m['constraints'])}); chunk "
        f"{result['chunk_rows']:,} rows. Generator: {m['flops_per_row']:,.0f} FLOPs "
        f"per row (dense layers of the {m['network']}, 2 x fan_in x fan_out each). "
        f"Matmul peak (4096^3 float32, best of 5): {result['peak_gflops']:.1f} "
        f"GFLOP/s, so at most {bound:,.0f} rows/s.",
        "",
        "| stage | rows | seconds | rows/s | of the peak bound |",
        "|---|---|---|---|---|",
        row("generator only (compact hard rows, on device)", g),
        row("decoded frames, exact-match filter, no file", d),
        row("`psygentab sample` to Parquet (process start to exit)", f),
        "",
        f"`psygentab sample` without interpreter start-up and imports (its "
        f"progress bar's last rate, from the model loaded to the last row): "
        f"{f['rows_per_s_after_load'] or float('nan'):,.0f} rows/s.",
        "",
        f"Peak resident memory of the `psygentab sample` process: "
        f"{f['peak_rss_mb']:,.0f} MB (its own VmHWM at exit); largest VmRSS "
        f"sampled in the first half of the run {f['rss_first_half_max_mb']:,.0f} "
        f"MB, in the second half {f['rss_second_half_max_mb']:,.0f} MB "
        f"({f['rss_samples']} samples, every 0.2 s).",
        "",
        f"File: {result['parquet']['rows']:,} rows, {result['parquet']['columns']} "
        f"columns, {result['parquet']['row_groups']} row groups, "
        f"{result['parquet']['bytes'] / 1e6:,.1f} MB.",
        "",
        f"The sampling command: `{f['command']}`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000_000, help="rows to write")
    parser.add_argument("--decoded-rows", type=int, default=None)
    parser.add_argument("--generator-chunks", type=int, default=32)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--backbone", choices=("vae", "gan"), default="vae")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--model", default=None, help="use this model file")
    parser.add_argument("--dir", default=None, help="where the Parquet file goes")
    parser.add_argument("--keep", action="store_true", help="keep the Parquet file")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="psygentab-stream-", dir=args.dir))
    try:
        about = machine()
        synth, model_path = fit_or_load(args, work)
        backbone = synth._backbone
        peak = flops.matmul_peak()["wall_gflops"]
        per_row = flops.sample_flops_per_row(backbone, synth.params)
        bound = peak * 1e9 / per_row

        generator_rows = args.generator_chunks * args.chunk_rows
        rate = time_generator(synth, args.chunk_rows, args.generator_chunks)
        generator = {
            "rows": generator_rows,
            "seconds": generator_rows / rate,
            "rows_per_s": rate,
        }
        decoded = time_decoded(
            synth, args.decoded_rows or min(args.n, 20_000_000), args.chunk_rows
        )

        out = work / "rows.parquet"
        streamed = stream_file(model_path, out, args.n, args.chunk_rows)
        parquet = check_file(out, args.n)
        result = {
            "argv": " ".join(
                ["python benchmarks/bench_sample_stream.py", *sys.argv[1:]]
            ),
            "machine": about,
            "load_after": os.getloadavg(),
            "n": args.n,
            "chunk_rows": args.chunk_rows,
            "model": {
                "backbone": backbone.name,
                "network": "generator" if backbone.name == "gan" else "decoder",
                "width": synth.encoder.layout.width,
                "constraints": [str(c) for c in synth.constraints],
                "flops_per_row": per_row,
            },
            "peak_gflops": peak,
            "bound_rows_per_s": bound,
            "generator": generator,
            "decoded": decoded,
            "file": streamed,
            "parquet": parquet,
        }
        text = markdown(result)
        print(text)
        Path(args.out).write_text(text, encoding="utf-8")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2, default=float))
        if args.keep:
            kept = Path(args.dir or ".") / "psygentab-stream.parquet"
            shutil.move(out, kept)
            print(f"kept {kept}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
