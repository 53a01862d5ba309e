"""Measuring helpers shared by the benchmark scripts.

* Dense-layer FLOPs read from a backbone's parameter tree: every 2-D ``kernel``
  leaf of shape ``(fan_in, fan_out)`` costs ``2 * fan_in * fan_out`` FLOPs per row
  and forward pass; biases, normalization and activations are left out. A
  backward pass is counted as twice the forward pass.
* The machine's matmul peak, timed on a large jitted matmul.
* Peak resident memory of this process, read from ``/proc``, and a sampler thread
  that tracks it during a block of code.
* The slope of a straight line through ``log y`` against ``log x``: 1 for a cost
  that grows linearly, 2 for a quadratic one.

Only numpy and jax are imported here, so the accelerator script can use this
module on a machine without the benchmark peers.
"""

from __future__ import annotations

import math
import resource
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np


def dense_macs(tree) -> int:
    """Sum of ``fan_in * fan_out`` over the 2-D ``kernel`` leaves of a tree."""
    total = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = getattr(path[-1], "key", None) if path else None
        if name == "kernel" and np.ndim(leaf) == 2:
            total += int(leaf.shape[0]) * int(leaf.shape[1])
    return total


def sample_flops_per_row(backbone, params) -> float:
    """Forward FLOPs of the network that emits a row (GAN generator, VAE decoder)."""
    network = "generator" if backbone.name == "gan" else "decoder"
    return 2.0 * dense_macs(params[network])


def step_flops(backbone, params, *, penalty: bool = False) -> float:
    """Dense FLOPs of one optimizer step at the backbone's batch size.

    VAE: encoder and decoder, forward and backward, on ``b`` rows; with
    ``penalty`` also the decoder on the ``penalty_batch`` rows drawn from the prior
    for the constraint term. GAN (per generator step): ``discriminator_steps``
    critic steps, each a generator forward on ``b`` rows and four critic passes
    (real, fake, interpolated, and the gradient penalty's double backward) of
    ``b / pac`` packed rows, forward and backward; then a generator step, the
    generator and the critic forward and backward. The constraint metrics
    themselves (pairwise distances to a few hundred reference rows) are not
    counted.

    Args:
      backbone: a :class:`psygentab_jax.models.Backbone`.
      params: its parameters (``state.params``).
      penalty: whether the step carries a penalty term (a constrained trainer).

    Returns:
      FLOPs of one step.
    """
    config = backbone.config
    b = config.batch_size
    if backbone.name == "vae":
        decoder = dense_macs(params["decoder"])
        flops = 3 * 2 * b * (dense_macs(params["encoder"]) + decoder)
        if penalty:
            flops += 3 * 2 * config.penalty_batch * decoder
        return float(flops)
    generator = dense_macs(params["generator"])
    critic = dense_macs(params["critic"])  # per pack of ``pac`` rows
    packs = b // config.pac
    critic_step = 2 * b * generator + 4 * 3 * 2 * packs * critic
    generator_step = 3 * 2 * b * generator + 3 * 2 * packs * critic
    return float(config.discriminator_steps * critic_step + generator_step)


def epoch_steps(backbone, rows: int) -> int:
    """Optimizer steps in one epoch over ``rows`` rows."""
    steps = -(-rows // backbone.config.batch_size)
    return max(steps, getattr(backbone.config, "min_steps", 1))


def matmul_peak(
    size: int = 4096,
    *,
    dtype=jnp.float32,
    precision=None,
    repeats: int = 5,
    device=None,
) -> dict:
    """Best rate of a jitted ``size x size`` matmul, in GFLOP/s.

    Args:
      size: the square side; ``2 size^3`` FLOPs per product.
      dtype: element type of both operands.
      precision: ``jax.lax.Precision`` of the product (``HIGHEST`` forces full
        float32 on a GPU; ``None`` lets it use TF32).
      repeats: timed products after one warm-up; the best counts.
      device: where to place the operands (default: the default device).

    Returns:
      ``{"wall_gflops", "cpu_gflops", "seconds"}``: per wall second, per CPU
      second of this process (all threads; meaningful on a CPU backend only), and
      the best wall time.
    """
    key = jax.random.key(0)
    a = jax.random.normal(key, (size, size), jnp.float32).astype(dtype)
    if device is not None:
        a = jax.device_put(a, device)
    product = jax.jit(lambda x, y: jnp.matmul(x, y, precision=precision))
    product(a, a).block_until_ready()
    best_wall = best_cpu = math.inf
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        product(a, a).block_until_ready()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, max(time.process_time() - cpu, 1e-9))
    flops = 2.0 * size**3
    return {
        "wall_gflops": flops / best_wall / 1e9,
        "cpu_gflops": flops / best_cpu / 1e9,
        "seconds": best_wall,
    }


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (NaN below two points)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = (x > 0) & (y > 0) & np.isfinite(y)
    if keep.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Resident memory of this process now, in MB (0 where ``/proc`` is absent)."""
    return _status_mb("VmRSS") or 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``VmHWM``), in MB."""
    peak = _status_mb("VmHWM")
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return peak


class RssSampler:
    """A daemon thread that records the largest ``VmRSS`` seen since ``reset``
    (and, in ``high``, since it started).

    XLA runs its computations with the GIL released, so the thread keeps
    sampling while a jitted call is in flight.
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self._peak = self.high = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.interval):
            now = rss_mb()
            self._peak = max(self._peak, now)
            self.high = max(self.high, now)

    def reset(self) -> None:
        self._peak = rss_mb()

    def peak(self) -> float:
        """Largest resident memory since the last reset, in MB."""
        return max(self._peak, rss_mb())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
