"""Interrupted runs, checkpoints and divergence: a fit survives SIGKILL and NaNs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import flax.serialization
import jax
import numpy as np
import pytest

from psygentab_jax import Synthesizer, TrainingDiverged, datasets
from psygentab_jax._src.models.vae import VAEConfig


@pytest.fixture(scope="module")
def small():
    return datasets.load("heart_disease_uci").iloc[:200].reset_index(drop=True)


def _same_tree(a, b) -> bool:
    same = jax.tree.map(lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b)
    return all(jax.tree.leaves(same))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "psygentab_jax.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _checkpoint_epoch(path: Path) -> int:
    try:
        return int(flax.serialization.msgpack_restore(path.read_bytes())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def test_sigkilled_fit_resumes_to_the_uninterrupted_model(tmp_path, small):
    data = tmp_path / "heart.csv"
    small.to_csv(data, index=False)
    epochs = "80"
    common = ["--target", "disease", "--epochs", epochs, "--seed", "0", "--quiet"]

    killed_model = tmp_path / "killed.psygentab"
    checkpoint = tmp_path / "run.ckpt"
    fit = [sys.executable, "-m", "psygentab_jax.cli", "fit", str(data), *common]
    fit += ["--model", str(killed_model), "--checkpoint", str(checkpoint)]
    process = subprocess.Popen(fit, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _checkpoint_epoch(checkpoint) < 3:
        assert process.poll() is None, "fit ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    stopped_at = _checkpoint_epoch(checkpoint)
    assert 3 <= stopped_at < int(epochs), "the kill did not land mid-training"
    assert not killed_model.exists(), "a killed fit must not leave a model"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers

    resumed = subprocess.run(fit, capture_output=True, text=True, timeout=600)
    assert resumed.returncode in (0, 3), resumed.stderr
    assert killed_model.exists()
    assert not checkpoint.exists(), "the checkpoint is deleted once the model is"

    straight_model = tmp_path / "straight.psygentab"
    straight = _cli(
        "fit", str(data), *common, "--model", str(straight_model), "--no-checkpoint"
    )
    assert straight.returncode == resumed.returncode, straight.stderr

    a, b = Synthesizer.load(killed_model), Synthesizer.load(straight_model)
    assert _same_tree(a.params, b.params)
    assert a.result.history == b.result.history
    for model, name in ((killed_model, "a.csv"), (straight_model, "b.csv")):
        out = _cli("sample", "--model", str(model), "-n", "300", "--seed", "5",
                   "--out", str(tmp_path / name))  # fmt: skip
        assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_checkpoint_resume_equals_uninterrupted_fit(tmp_path, small):
    class Interrupt(Exception):
        pass

    def stop_at_four(epoch, record):
        if epoch == 4:
            raise Interrupt

    checkpoint = tmp_path / "fit.ckpt"
    with pytest.raises(Interrupt):
        Synthesizer(epochs=7, seed=2).fit(
            small, target="disease", checkpoint=checkpoint, callback=stop_at_four
        )
    assert _checkpoint_epoch(checkpoint) == 4
    resumed = Synthesizer(epochs=7, seed=2).fit(
        small, target="disease", checkpoint=checkpoint
    )
    straight = Synthesizer(epochs=7, seed=2).fit(small, target="disease")
    assert _same_tree(resumed.params, straight.params)
    assert resumed.result.history == straight.result.history
    assert resumed.result.best_epoch == straight.result.best_epoch

    # The finished run's checkpoint does not fit a run with another seed.
    with pytest.raises(ValueError, match="belongs to another run"):
        Synthesizer(epochs=7, seed=3).fit(
            small, target="disease", checkpoint=checkpoint
        )
    # Nor does a damaged file pass for a checkpoint.
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a psygentab checkpoint"):
        Synthesizer(epochs=7, seed=2).fit(
            small, target="disease", checkpoint=checkpoint
        )


def test_divergence_is_discarded_and_the_step_shrinks(tmp_path, small):
    # An Adam step of 3 blows the VAE's variances up within a few epochs; each
    # non-finite epoch is discarded and the step halved until training recovers.
    synth = Synthesizer(epochs=15, seed=0, config=VAEConfig(lr=3.0))
    synth.fit(small, target="disease", constraints=[])
    assert synth.result.diverged
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(synth.params))
    finite = synth.result.history["finite"]
    assert not all(finite) and finite[-1]
    assert np.isfinite(synth.result.history["utility"][-1])
    rows = synth.sample(200, seed=1)
    assert len(rows) == 200
    assert synth.save(tmp_path / "ok.psygentab").exists()


def test_divergence_that_does_not_recover_stops_without_a_model(small):
    synth = Synthesizer(epochs=15, seed=0, config=VAEConfig(lr=1e4))
    with pytest.raises(TrainingDiverged, match="diverged"):
        synth.fit(small, target="disease", constraints=[])
    assert synth.params is None


def test_a_model_with_non_finite_parameters_is_never_saved(tmp_path, small):
    synth = Synthesizer(epochs=1, seed=0).fit(small, target="disease")
    synth.params = jax.tree.map(lambda x: np.full_like(x, np.nan), synth.params)
    target = tmp_path / "nan.psygentab"
    with pytest.raises(ValueError, match="non-finite"):
        synth.save(target)
    assert not target.exists()
    assert os.listdir(tmp_path) == []
