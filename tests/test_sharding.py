"""Eight (fake) devices give the model and the rows of one device; a two-process
``jax.distributed`` launch trains that model and samples one part per process.

The checks run in subprocesses, because XLA fixes the number of host devices when
the backend starts: ``--xla_force_host_platform_device_count=8`` turns the CPU into
eight devices there.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings

import jax
import numpy as np
import pandas as pd

from psygentab_jax._src.synthesizer import Synthesizer

CHILD = textwrap.dedent(
    """
    import json, warnings
    import jax, numpy as np
    from psygentab_jax import datasets
    from psygentab_jax._src import sharding
    from psygentab_jax._src.synthesizer import Synthesizer

    assert len(jax.devices()) == 8, jax.devices()
    columns = ["age", "sex", "cp", "chol", "thalch", "disease"]
    df = datasets.load("heart_disease_uci")[columns].iloc[:400]
    fits = {}
    for devices in (1, 8):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Synthesizer(
                backbone="vae", epochs=2, seed=0, batch_size=80, devices=devices
            )
            fits[devices] = model.fit(df, target="disease", constraints=[])
    one, eight = fits[1], fits[8]
    out = {}

    leaves = jax.tree.leaves(eight.params)
    out["param_devices"] = sorted({len(x.sharding.device_set) for x in leaves})
    out["param_replicated"] = all(x.sharding.is_fully_replicated for x in leaves)
    gaps = jax.tree.map(
        lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
        one.params,
        eight.params,
    )
    out["param_gap"] = max(jax.tree.leaves(gaps))
    flat = [np.ravel(np.asarray(x)) for x in jax.tree.leaves(one.params)]
    other = [np.ravel(np.asarray(x)) for x in jax.tree.leaves(eight.params)]
    out["param_mean_gap"] = float(
        np.mean(np.abs(np.concatenate(flat) - np.concatenate(other)))
    )

    # The epoch the 8-device fit compiles: each device gets 80 / 8 rows of a
    # minibatch, and the gradients are summed across devices.
    backbone = eight._build(eight._stats, eight._model_cfg)
    data = eight.encoder.encode(eight._frames["train"])
    mesh = eight.mesh
    state = sharding.replicate(backbone.init(jax.random.key(0)), mesh)
    hlo = (
        jax.jit(backbone.epoch)
        .lower(state, sharding.replicate(data, mesh), jax.random.key(1), None)
        .compile()
        .as_text()
    )
    width = data.shape[1]
    out["per_device_batch"] = f"f32[10,{width}]" in hlo
    out["whole_batch"] = f"f32[80,{width}]" in hlo
    out["all_reduce"] = "all-reduce" in hlo

    # Sampling: 8 devices draw the rows 1 device draws, from the same parameters.
    alone = one.sample(3000, seed=1, batch_size=2048)
    spread = Synthesizer.__new__(Synthesizer)
    spread.__dict__.update(one.__dict__)
    spread.set_mesh(mesh)
    out["same_rows_same_params"] = spread.sample(3000, seed=1).equals(alone)
    draw = spread._compact_sampler(32, 4, mesh)
    with jax.threefry_partitionable(False):
        params = spread._sampling_params(mesh)
        values, codes = draw(params, jax.random.key(4), np.uint32(0), None)
    out["sample_devices"] = len(values.sharding.device_set)
    out["sample_split"] = not values.sharding.is_fully_replicated

    # And the two trained models draw the same rows, to float tolerance.
    key = jax.random.key(5)
    draws = []
    for model in (one, eight):
        m = sharding.local(model.mesh)
        fn = model._compact_sampler(32, 4, m)
        with jax.threefry_partitionable(False):
            drawn = fn(model._sampling_params(m), key, np.uint32(0), None)
        draws.append([np.reshape(x, (32 * 1024, -1)) for x in jax.device_get(drawn)])
    (v1, c1), (v8, c8) = draws
    out["value_gap"] = float(np.max(np.abs(v1 - v8)))
    out["code_agreement"] = float(np.mean(c1 == c8))
    print(json.dumps(out))
    """
)


def _cpu_env(devices: int) -> dict:
    """This process's environment for a child whose CPU is ``devices`` devices."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
    ).strip()
    return env


def test_eight_devices_match_one():
    env = _cpu_env(8)
    cache = jax.config.jax_compilation_cache_dir
    if cache:
        env["JAX_COMPILATION_CACHE_DIR"] = cache
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    # Parameters and optimizer state live, replicated, on all 8 devices.
    assert out["param_devices"] == [8] and out["param_replicated"]
    # Minibatch rows are split across devices and gradients all-reduced.
    assert out["per_device_batch"] and not out["whole_batch"] and out["all_reduce"]
    # Same model: only the order of float32 sums differs (8 partial sums of the
    # gradient, all-reduced, against one sum), ~1e-7 relative. Adam divides each
    # gradient by its running scale, which magnifies that rounding where a
    # gradient nearly cancels (a kernel row of a rarely-hot one-hot input): a
    # few entries move by up to ~1e-5 over 10 steps, the rest by ~1e-8. A wrong
    # batch split or a lost gradient share would move every entry by ~lr = 1e-3
    # per step, so the bounds (max 5e-5, mean 1e-7) separate the two by 100x.
    assert out["param_gap"] < 5e-5, out["param_gap"]
    assert out["param_mean_gap"] < 1e-7, out["param_mean_gap"]
    # Sampling is split over the 8 devices and draws exactly the same rows: each
    # block of rows is drawn whole on one device from its own key.
    assert out["sample_devices"] == 8 and out["sample_split"]
    assert out["same_rows_same_params"]
    # The two trained models' draws agree to float tolerance: scalars within
    # 1e-4, categories equal but where a uniform falls within rounding of a
    # cumulative share (none expected among 32768 x 8 draws at a 1e-7 gap).
    assert out["value_gap"] < 1e-4, out["value_gap"]
    assert out["code_agreement"] >= 0.999, out["code_agreement"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two_processes(arguments: list[str]) -> None:
    """``psygentab ARGUMENTS`` as a ``jax.distributed`` launch on localhost: two
    processes of two fake CPU devices each, as the README's launch commands."""
    env = _cpu_env(2)
    env["JAX_COORDINATOR_ADDRESS"] = f"127.0.0.1:{_free_port()}"
    env["PSYGENTAB_NUM_PROCESSES"] = "2"
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "psygentab_jax.cli", *arguments],
            env=dict(env, PSYGENTAB_PROCESS_ID=str(k)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    try:
        errors = [child.communicate(timeout=300)[1] for child in children]
    finally:
        for child in children:
            child.kill()
    assert [child.returncode for child in children] == [0, 0], errors


def _small_table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "site": rng.choice(["a", "b", "c"], rows),
            "dose": np.round(rng.gamma(2.0, 1.5, rows), 1),
            "outcome": rng.choice([0, 1], rows, p=[0.7, 0.3]),
        }
    )


def test_a_two_process_fit_trains_the_model_of_one_process(tmp_path):
    """``psygentab fit`` under ``jax.distributed`` trains on the 4 devices of both
    processes; process 0 writes the model, which is the model that one process
    with 4 devices trains (the same split of every minibatch, 16 rows a device)."""
    data = tmp_path / "table.csv"
    _small_table(400).to_csv(data, index=False)
    # A constraint that never binds keeps its multiplier at 0: the exact audit
    # values (step functions of the samples) cannot feed rounding back into the
    # gradients through the dual update, so the two fits differ by rounding only.
    fit = ["fit", str(data), "--target", "outcome", "--epochs", "2", "--quiet"]
    fit += ["--constraint", "dcr_share <= 1", "--no-checkpoint", "--model"]
    _launch_two_processes([*fit, str(tmp_path / "two.psygentab")])
    env = _cpu_env(4)
    one = [*fit, str(tmp_path / "one.psygentab"), "--devices", "all"]
    done = subprocess.run(
        [sys.executable, "-m", "psygentab_jax.cli", *one],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    two, one = (Synthesizer.load(tmp_path / f"{n}.psygentab") for n in ("two", "one"))
    assert two._backbone.config.batch_size == 64
    gaps = np.concatenate(
        [
            np.abs(np.asarray(a) - np.asarray(b)).ravel()
            for a, b in zip(
                jax.tree.leaves(two.params), jax.tree.leaves(one.params), strict=True
            )
        ]
    )
    # Only the order of the cross-process sums may differ (float32 rounding; the
    # measured gaps were 3e-7 at most, 7e-10 on average); a lost gradient share
    # or a wrong split would move every entry by ~lr = 1e-3 per step.
    assert gaps.max() < 5e-5, gaps.max()
    assert gaps.mean() < 1e-7, gaps.mean()


def test_a_two_process_launch_writes_one_part_per_process(tmp_path):
    """``psygentab sample`` under ``jax.distributed`` (two processes of two fake
    devices each, on localhost): each process writes its own part, the rows of
    ``iter_samples(part=(k, 2))`` on one device."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Synthesizer(backbone="vae", epochs=2, seed=0)
        model.fit(_small_table(300), target="outcome")
    path = model.save(tmp_path / "model.psygentab")
    _launch_two_processes(
        ["sample", "--model", str(path), "-n", "5001", "--seed", "4"]
        + ["--devices", "all", "--out", str(tmp_path / "rows.parquet")]
        + ["--chunk-rows", "2048"]
    )
    for k, rows in enumerate((2501, 2500)):
        found = pd.read_parquet(tmp_path / f"rows-0000{k}-of-00002.parquet")
        expected = pd.concat(list(model.iter_samples(5001, seed=4, part=(k, 2))))
        assert len(found) == rows
        pd.testing.assert_frame_equal(found, expected.reset_index(drop=True))
