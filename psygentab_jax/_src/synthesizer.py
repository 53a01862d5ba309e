"""PSyGenTAB end to end: a generator trained under privacy constraints with ALM.

The pandas-facing :class:`Synthesizer` splits the input three ways (never trained
on: a *holdout* for the final audit and a *reference* set of fresh patients that the
privacy surrogates compare against during training), fits the encoder, and trains a
backbone whose generator loss carries the augmented Lagrangian term of the stated
constraints. One compiled epoch (:func:`make_constrained_epoch`) does the backbone's
epoch with the penalty hook, an exact estimate of every constraint on hard samples,
and the ALM dual update; :func:`frontier` runs ``K`` such trainings, one per
threshold, as one ``vmap``-ed program.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import msgpack
import numpy as np
import pandas as pd

from psygentab_jax._src import alm, io, sharding, stream
from psygentab_jax._src import constraints as cons
from psygentab_jax._src.encoder import TableEncoder
from psygentab_jax._src.models import heads
from psygentab_jax._src.models.base import (
    Backbone,
    TrainState,
    scale_step_size,
    step_sizes,
)
from psygentab_jax._src.models.gan import GANConfig, make_gan
from psygentab_jax._src.models.vae import VAEConfig, make_vae
from psygentab_jax._src.schema import (
    Schema,
    SchemaError,
    check_learnable,
    infer_schema,
)

logger = logging.getLogger(__name__)

FORMAT = "psygentab-model"
FORMAT_VERSION = 1
CHECKPOINT_FORMAT = "psygentab-checkpoint-1"
DEFAULT_CONSTRAINTS = ("dcr_share <= 0.55", "exact_match == 0", "mia_auc <= 0.55")
BARREN_CALLS = 32
"""Compiled sampling calls in a row that may yield no new row (every draw equal to
a training row) before sampling gives up."""
SAMPLE_BLOCK = 1024
"""Rows drawn from one PRNG key when sampling: block ``i`` of a seed's stream comes
from ``fold_in(key, i)``, so chunking and device count leave the rows unchanged."""
SAMPLE_GROUP = 4
"""Blocks each device draws at once inside a sampling call (4,096 rows stay in
cache on a CPU; a whole 65,536-row chunk at once ran 30 % slower)."""


# ---------------------------------------------------------------- the epoch
GAN_MIN_STEPS = 50
"""Generator steps per epoch at least, for the default GAN config."""


class ConstrainedState(NamedTuple):
    """What one constrained epoch carries.

    Attributes:
      model: the backbone's :class:`TrainState`.
      dual: the ALM state over the ``m`` constraints (fields of shape ``(m,)``).
    """

    model: TrainState
    dual: alm.ALMState


class EpochRecord(NamedTuple):
    """Per-epoch diagnostics (each leaf gains a leading axis under ``vmap``).

    Attributes:
      utility: ``()`` the backbone's main loss (VAE: reconstruction + KL; GAN:
        generator adversarial loss).
      surrogate: ``(m,)`` mean surrogate values over the epoch's steps.
      exact: ``(m,)`` exact values on a hard sample after the epoch.
      violation: ``(m,)`` ``max(g, 0)`` (``|h|`` for equalities) of ``exact``.
      multiplier: ``(m,)`` multipliers after the update.
      penalty: ``(m,)`` penalties after the update.
      feasible: ``()`` every constraint met by the exact estimate.
      finite: ``()`` every parameter, the utility and the exact values finite;
        when false the epoch's update was discarded and the step size halved.
    """

    utility: jax.Array
    surrogate: jax.Array
    exact: jax.Array
    violation: jax.Array
    multiplier: jax.Array
    penalty: jax.Array
    feasible: jax.Array
    finite: jax.Array


@dataclasses.dataclass(frozen=True)
class DualConfig:
    """Hyperparameters of the multiplier and penalty updates (once per epoch).

    Attributes:
      penalty: initial per-constraint penalty.
      penalty_growth: factor applied when a violation did not shrink enough.
      penalty_max: the cap on every penalty.
      smoothing: moving-average weight of past exact estimates (noise damping).
      eval_rows: hard synthetic rows drawn per epoch for the exact estimate.
      reference_rows: training and reference rows compared against per epoch.
      margin: training aims this far inside each stated threshold (``<=``
        thresholds lowered, ``>=`` raised; not ``exact_match``, which the final
        check enforces), so that a constraint met on the per-epoch estimates is
        still met on the holdout audit despite its sampling noise.
    """

    penalty: float = 1.0
    penalty_growth: float = 1.5
    penalty_max: float = 100.0
    smoothing: float = 0.5
    eval_rows: int = 512
    reference_rows: int = 512
    margin: float = 0.02


def make_backbone_penalty(
    space, constraint_list: tuple[cons.Constraint, ...], context: cons.Context
):
    """The penalty hook: the augmented Lagrangian term of the surrogates.

    ``penalty_args = (dual_state, thresholds, references)``.
    """

    def penalty_fn(fake_rows, penalty_args):
        dual, thresholds, refs = penalty_args
        metric = space.embed(fake_rows)
        values = cons.evaluate(constraint_list, metric, refs, context, soft=True)
        g, is_equality = cons.to_g(values, constraint_list, thresholds)
        return alm.lagrangian_term(g, dual, is_equality), values

    return penalty_fn


def make_constrained_epoch(
    backbone: Backbone,
    space,
    constraint_list: tuple[cons.Constraint, ...],
    context: cons.Context,
    dual_config: DualConfig,
) -> Callable:
    """One constrained epoch as a pure function (jit or vmap it at the edge).

    ``epoch(carry, data, train_metric, reference_metric, key, thresholds)`` with
    ``carry`` a :class:`ConstrainedState`, ``data`` the encoded training rows
    ``(n, d)``, ``train_metric`` ``(n, p)`` and ``reference_metric`` ``(r, p)``
    their metric-space views, ``thresholds`` ``(m,)``; returns ``(carry,
    EpochRecord)``.
    """
    m = len(constraint_list)
    is_equality = cons.to_g(jnp.zeros(m), constraint_list, jnp.zeros(m, jnp.float32))[1]

    def references(key, train_metric, reference_metric):
        r = min(dual_config.reference_rows, reference_metric.shape[0])
        t = min(dual_config.reference_rows, train_metric.shape[0])
        k_train, k_ref = jax.random.split(key)
        train = train_metric[jax.random.permutation(k_train, train_metric.shape[0])[:t]]
        ref = reference_metric[
            jax.random.permutation(k_ref, reference_metric.shape[0])[:r]
        ]
        return cons.make_references(train, ref, context)

    def epoch(carry, data, train_metric, reference_metric, key, thresholds):
        k_refs, k_epoch, k_eval = jax.random.split(key, 3)
        refs = references(k_refs, train_metric, reference_metric)
        model, metrics = backbone.epoch(
            carry.model, data, k_epoch, (carry.dual, thresholds, refs)
        )
        rows = backbone.sample(model.params, k_eval, dual_config.eval_rows, hard=True)
        exact = cons.evaluate(
            constraint_list, space.embed(rows, hard=True), refs, context, soft=False
        )
        g, _ = cons.to_g(exact, constraint_list, thresholds)
        dual, status = alm.update(
            carry.dual,
            g,
            is_equality,
            penalty_growth=dual_config.penalty_growth,
            penalty_max=dual_config.penalty_max,
            smoothing=dual_config.smoothing,
        )
        utility = _utility(backbone.name, metrics)
        finite = (
            _all_finite(model.params)
            & jnp.isfinite(utility)
            & jnp.all(jnp.isfinite(exact))
        )
        record = EpochRecord(
            utility=utility,
            surrogate=(
                jnp.asarray(metrics["penalty_aux"], jnp.float32).reshape(m)
                if m
                else jnp.zeros((0,), jnp.float32)
            ),
            exact=exact,
            violation=alm.violation(g, is_equality),
            multiplier=dual.multiplier,
            penalty=dual.penalty,
            feasible=jnp.all(alm.violation(g, is_equality) <= 0.0),
            finite=finite,
        )
        # Never carry a non-finite model forward: keep the previous state and
        # halve its optimizers' step so that the next epoch takes smaller steps.
        model = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old), model, carry.model
        )
        model = model.replace(
            opt_state=scale_step_size(model.opt_state, jnp.where(finite, 1.0, 0.5))
        )
        dual = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old), dual, carry.dual
        )
        del status
        return ConstrainedState(model, dual), record

    return epoch


def _utility(name, metrics):
    """The backbone's own objective, without the penalty term."""
    if name == "vae":
        return jnp.asarray(metrics["reconstruction"] + metrics["kl"], jnp.float32)
    return jnp.asarray(metrics["loss_generator"], jnp.float32)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


MAX_DIVERGED_EPOCHS = 8
"""Non-finite epochs in a row a fit tolerates (each halves the step) before
stopping with :class:`TrainingDiverged`."""


class TrainingDiverged(RuntimeError):
    """Training kept producing non-finite values; no model was kept."""


@dataclasses.dataclass
class _Run:
    """Everything a constrained fit carries between epochs, and its checkpoint.

    ``records`` holds one :class:`EpochRecord` per finished epoch (with a leading
    model axis under the frontier's vmap); ``best``, ``best_epoch`` and
    ``last_good`` hold one entry per model.
    """

    epoch: int
    carry: ConstrainedState
    records: list
    best: list
    best_epoch: list
    last_good: list

    def save(self, path: str | Path, fingerprint: str) -> None:
        """Writes the run to ``path`` atomically (msgpack of arrays; no pickle)."""
        count = len(self.best)
        to_dict = flax.serialization.to_state_dict
        state = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": fingerprint,
            "epoch": self.epoch,
            "carry": to_dict(jax.device_get(self.carry)),
            "records": {
                field: np.stack([np.asarray(getattr(r, field)) for r in self.records])
                for field in EpochRecord._fields
            }
            if self.records
            else {},
            "has_best": np.asarray([b is not None for b in self.best]),
            "best_epoch": np.asarray(self.best_epoch),
            "best": {
                str(k): to_dict(jax.device_get(b if b is not None else g))
                for k, (b, g) in enumerate(zip(self.best, self.last_good, strict=True))
            },
            "last_good": {
                str(k): to_dict(jax.device_get(self.last_good[k])) for k in range(count)
            },
        }
        io.write_bytes(path, flax.serialization.msgpack_serialize(state))

    @classmethod
    def load(cls, path: str | Path, template: _Run, fingerprint: str) -> _Run:
        """Reads a checkpoint written by :meth:`save` into ``template``'s structure.

        Raises:
          ValueError: the file is not a checkpoint, is truncated, or belongs to
            another run (other data, seed, configuration or constraints).
        """
        try:
            state = flax.serialization.msgpack_restore(Path(path).read_bytes())
        except OSError as err:
            raise ValueError(f"cannot read checkpoint {str(path)!r}: {err}") from None
        except Exception:  # msgpack raises several unrelated types on bad bytes
            raise ValueError(
                f"{str(path)!r} is not a psygentab checkpoint (unreadable or "
                "truncated); delete it to start afresh"
            ) from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{str(path)!r} is not a psygentab checkpoint")
        if state.get("fingerprint") != fingerprint:
            raise ValueError(
                f"checkpoint {str(path)!r} belongs to another run (different data, "
                "seed, settings or constraints); delete it or choose another path"
            )
        from_dict = flax.serialization.from_state_dict
        epoch = int(state["epoch"])
        records = [
            EpochRecord(*(state["records"][f][j] for f in EpochRecord._fields))
            for j in range(epoch)
        ]
        count = len(template.best)
        params = template.last_good[0]
        last_good = [
            from_dict(params, state["last_good"][str(k)]) for k in range(count)
        ]
        best = [
            from_dict(params, state["best"][str(k)]) if state["has_best"][k] else None
            for k in range(count)
        ]
        return cls(
            epoch=epoch,
            carry=from_dict(template.carry, state["carry"]),
            records=records,
            best=best,
            best_epoch=[int(e) for e in state["best_epoch"]],
            last_good=last_good,
        )


# ------------------------------------------------------------------ splits
class Split(NamedTuple):
    """Row positions of the three parts of the input table."""

    train: np.ndarray
    reference: np.ndarray
    holdout: np.ndarray


def split_rows(
    df: pd.DataFrame,
    *,
    target: str | None,
    group: str | None,
    holdout: float,
    reference: float,
    seed: int,
) -> Split:
    """Split rows into train / reference / holdout, stratified and grouped.

    Stratified on ``target`` (classes too small to stratify are spread at random),
    and grouped by ``group`` (all rows of one patient fall in one part) when given.
    """
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    positions = np.arange(len(df))
    if len(df) < 10:
        raise SchemaError(
            f"the table has {len(df)} rows; at least 10 are needed to carve a holdout"
        )

    def carve(rows, share, salt):
        if group is not None:
            splitter = GroupShuffleSplit(
                n_splits=1, test_size=share, random_state=seed + salt
            )
            keep, cut = next(splitter.split(rows, groups=df[group].to_numpy()[rows]))
            return rows[keep], rows[cut]
        labels = None
        if target is not None:
            labels = df[target].astype(str).to_numpy()[rows]
            counts = pd.Series(labels).value_counts()
            if counts.min() < 2:
                labels = np.where(
                    np.isin(labels, counts[counts < 2].index), "__rare__", labels
                )
                if (pd.Series(labels).value_counts() < 2).any():
                    labels = None
        keep, cut = train_test_split(
            rows, test_size=share, random_state=seed + salt, stratify=labels
        )
        return np.sort(keep), np.sort(cut)

    rest, held = carve(positions, holdout, 0)
    train, ref = carve(rest, reference / (1.0 - holdout), 1)
    return Split(train, ref, held)


# -------------------------------------------------------------- synthesizer
@dataclasses.dataclass
class FitResult:
    """What :meth:`Synthesizer.fit` learned about its own run."""

    history: dict
    best_epoch: int
    feasible_during_training: bool
    diverged: bool = False


class Synthesizer:
    """Fit a generator under privacy constraints, sample, audit and evaluate.

    Example::

        synth = Synthesizer(backbone="vae", epochs=100, seed=0)
        synth.fit(df, target="disease", constraints=["dcr_share <= 0.55"])
        rows = synth.sample(1000)
        report = synth.audit()          # exact audit on the holdout
        synth.save("model.psygentab")

    Args:
      backbone: ``"vae"`` (TVAE-style, the default) or ``"gan"`` (CTGAN-style).
      epochs: training epochs.
      seed: the seed of every random draw (splits, initialization, sampling).
      batch_size: minibatch rows (defaults to the backbone's, capped by the data).
      holdout: share of rows kept for the final audit and evaluation.
      reference: share of rows of fresh patients the surrogates compare against.
      dual: :class:`DualConfig`.
      config: a :class:`GANConfig` / :class:`VAEConfig` overriding the defaults.
      mesh: a :class:`jax.sharding.Mesh` to train and sample on, data-parallel:
        each minibatch's rows and each sampled chunk's rows are split along its
        ``"data"`` axis (or its only axis), everything else is replicated.
      devices: instead of ``mesh``, a one-axis mesh over the first ``devices``
        devices (an int) or over the given devices. With neither, JAX's default
        device is used. The model is the same on any mesh, to float rounding,
        and so are the sampled rows.
    """

    def __init__(
        self,
        *,
        backbone: str = "vae",
        epochs: int = 100,
        seed: int = 0,
        batch_size: int | None = None,
        holdout: float = 0.2,
        reference: float = 0.1,
        dual: DualConfig | None = None,
        config: GANConfig | VAEConfig | None = None,
        mesh: jax.sharding.Mesh | None = None,
        devices: int | Sequence | None = None,
    ):
        if backbone not in ("gan", "vae"):
            raise ValueError(f"backbone must be 'gan' or 'vae', not {backbone!r}")
        self.mesh = sharding.resolve(mesh, devices)
        if batch_size is not None and batch_size % sharding.size(self.mesh):
            raise ValueError(
                f"batch_size={batch_size} does not split evenly over "
                f"{sharding.size(self.mesh)} devices"
            )
        self.backbone_name = backbone
        self.epochs = int(epochs)
        self.seed = int(seed)
        self.batch_size = batch_size
        self.holdout_share = holdout
        self.reference_share = reference
        self.dual_config = dual or DualConfig()
        self.config = config
        self.constraints: tuple[cons.Constraint, ...] = ()
        self.encoder: TableEncoder | None = None
        self.params = None
        self.result: FitResult | None = None
        self.data_info: dict = {}
        self._frames: dict[str, pd.DataFrame] = {}

    # -------------------------------------------------------------- build
    def _model_config(self, n_train: int):
        """The backbone config, with a batch that gives small tables enough steps.

        Unless ``batch_size`` is set, a batch holds at most a fifth of the training
        rows (at least 64): with the backbones' default of 500, a 400-row table
        would take one optimizer step per epoch. A GAN epoch also takes at least
        :data:`GAN_MIN_STEPS` steps unless ``config`` is given: after 700 steps
        (100 epochs of pima) its samples did not yet depend on the condition
        they were drawn for, and TSTR ROC-AUC was below 0.5.
        """
        config = self.config or (
            GANConfig() if self.backbone_name == "gan" else VAEConfig()
        )
        batch = self.batch_size or min(config.batch_size, max(64, n_train // 5))
        batch = min(batch, n_train)
        if self.batch_size is None:
            # Equal shares for every device of the mesh (whole packs for a GAN).
            pac = config.pac if self.backbone_name == "gan" else 1
            unit = math.lcm(sharding.size(self.mesh), pac)
            batch = max(unit, batch // unit * unit)
        if self.backbone_name == "gan":
            batch = max(config.pac, batch // config.pac * config.pac)
            if self.config is None:
                config = dataclasses.replace(config, min_steps=GAN_MIN_STEPS)
        return dataclasses.replace(config, batch_size=int(batch))

    def _build(self, stats: heads.DataStats, config, penalty_fn=None) -> Backbone:
        make = make_gan if self.backbone_name == "gan" else make_vae
        target = self.encoder.schema.target
        if target is not None and target not in self._categorical_columns():
            target = None
        split = None if self.mesh is None else sharding.rows(self.mesh)
        return make(
            self.encoder.layout,
            stats,
            config,
            target=target,
            penalty_fn=penalty_fn,
            batch_sharding=split,
        )

    def _categorical_columns(self) -> list[str]:
        return [b.column for b in self.encoder.layout.category_blocks]

    def _context(self) -> cons.Context:
        space = self.encoder.metric_space
        numeric = tuple(c.start for c in space.columns if c.kind == "numeric")
        target = None
        name = self.encoder.schema.target
        for column in space.columns:
            if column.kind == "categorical" and column.name == name:
                target = (column.start, column.width)
        return cons.Context(numeric, target)

    # ---------------------------------------------------------------- fit
    def fit(
        self,
        df: pd.DataFrame,
        target: str | None = None,
        constraints: Sequence[str | cons.Constraint] | None = None,
        *,
        schema: Schema | None = None,
        group: str | None = None,
        callback: Callable[[int, dict], None] | None = None,
        data_path: str | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 1,
    ) -> Synthesizer:
        """Fit on ``df`` under ``constraints`` (the defaults when ``None``).

        Args:
          df: the real table.
          target: the outcome column (stratifies the splits, drives sampling).
          constraints: expressions like ``"dcr_share <= 0.55"``.
          schema: a schema to use instead of inferring one.
          group: the column naming a patient when rows repeat; defaults to the
            schema's identifier when its values repeat.
          callback: ``callback(epoch, record_dict)`` after every epoch.
          data_path: where ``df`` was read from, remembered (with its hash) so a
            loaded model can re-read its holdout for :meth:`audit`.
          checkpoint: a file for the run's state, written atomically every
            ``checkpoint_every`` epochs. When it exists, the fit resumes from it
            (it must come from the same data, seed, settings and constraints)
            and ends with exactly the model an uninterrupted fit gives.
          checkpoint_every: epochs between checkpoints.

        Raises:
          TrainingDiverged: the losses stayed non-finite although every bad epoch
            was discarded and the step size halved (see :data:`MAX_DIVERGED_EPOCHS`).
        """
        if int(checkpoint_every) < 1:
            raise ValueError("checkpoint_every must be at least 1")
        constraint_list = tuple(
            cons.parse(c)
            for c in (DEFAULT_CONSTRAINTS if constraints is None else constraints)
        )
        self._prepare(
            df,
            target,
            constraint_list,
            schema=schema,
            group=group,
            data_path=data_path,
        )
        self._train(
            callback, checkpoint=checkpoint, checkpoint_every=int(checkpoint_every)
        )
        return self

    def _fingerprint(self, thresholds: np.ndarray) -> str:
        """What a checkpoint must share with the run that resumes from it."""
        facts = {
            "data": self.data_info.get("sha256"),
            "split": self.data_info.get("split"),
            "schema": self.encoder.schema.to_json(),
            "backbone": self.backbone_name,
            "seed": self.seed,
            "config": dataclasses.asdict(self._model_cfg),
            "dual": dataclasses.asdict(self.dual_config),
            "constraints": [str(c) for c in self.constraints],
            "thresholds": np.asarray(thresholds, np.float32).tolist(),
        }
        text = json.dumps(facts, sort_keys=True, default=_json_default)
        return hashlib.sha256(text.encode()).hexdigest()

    def _prepare(
        self,
        df: pd.DataFrame,
        target: str | None,
        constraint_list,
        *,
        schema: Schema | None = None,
        group: str | None = None,
        data_path: str | None = None,
    ) -> None:
        """Split the rows, fit the encoder and remember the constraints."""
        constraint_list = tuple(cons.parse(c) for c in constraint_list)
        schema = schema or infer_schema(df, target=target)
        if target is not None and schema.target != target:
            schema = Schema(schema.columns, target)
        check_learnable(df, schema)
        if group is None:
            repeated = [n for n in schema.identifiers if df[n].duplicated().any()]
            group = repeated[0] if repeated else None
        elif group not in df.columns:
            raise SchemaError(f"group column {group!r} does not exist in the table")
        split = split_rows(
            df,
            target=schema.target,
            group=group,
            holdout=self.holdout_share,
            reference=self.reference_share,
            seed=self.seed,
        )
        train = df.iloc[split.train].reset_index(drop=True)
        self.encoder = TableEncoder(schema, seed=self.seed).fit(train)
        self.constraints = constraint_list
        self._frames = {
            "train": train,
            "reference": df.iloc[split.reference].reset_index(drop=True),
            "holdout": df.iloc[split.holdout].reset_index(drop=True),
        }
        self._train_hashes = np.unique(_row_hashes(train, self._learned_columns()))
        self.data_info = {
            "rows": len(df),
            "group": group,
            "split": {k: v.tolist() for k, v in split._asdict().items()},
            "path": data_path,
            "sha256": _frame_digest(df),
        }

    def _train(
        self,
        callback,
        thresholds: np.ndarray | None = None,
        *,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 1,
    ):
        """Train one model, or one per row of ``thresholds`` ``(K, m)`` (vmapped).

        With ``checkpoint``, the whole run state (models, ALM states, per-epoch
        records, best iterates) is written there atomically every
        ``checkpoint_every`` epochs, and a run finds it there to resume from.

        Returns per-model ``(params, FitResult)`` pairs; for one model also stores
        them on ``self``.

        Raises:
          TrainingDiverged: more than :data:`MAX_DIVERGED_EPOCHS` epochs in a row
            were non-finite (each one discarded, with the step size halved).
        """
        train = self._frames["train"]
        data = self.encoder.encode(train)
        train_metric = self.encoder.metric_space.embed_hard(data)
        reference_metric = self.encoder.to_metric(
            self._frames["reference"], unknown="ignore"
        )
        stats = heads.DataStats.from_encoded(self.encoder.layout, data)
        config = self._model_config(len(train))
        self._stats, self._model_cfg = stats, config
        context = self._context()
        penalty_fn = (
            make_backbone_penalty(self.encoder.metric_space, self.constraints, context)
            if self.constraints
            else None
        )
        backbone = self._build(stats, config, penalty_fn)
        epoch = make_constrained_epoch(
            backbone,
            self.encoder.metric_space,
            self.constraints,
            context,
            self.dual_config,
        )
        key = jax.random.key(self.seed)
        k_init, k_train = jax.random.split(key)
        m = len(self.constraints)
        carry = ConstrainedState(
            backbone.init(k_init),
            alm.init(jnp.zeros(m), penalty=self.dual_config.penalty),
        )
        aimed = _training_thresholds(self.constraints, self.dual_config.margin)
        batched = thresholds is not None
        if batched:
            count = len(thresholds)
            carry = jax.tree.map(lambda x: jnp.stack([x] * count), carry)
            epoch = jax.vmap(epoch, in_axes=(0, None, None, None, None, 0))
            thresholds = jnp.asarray(thresholds, jnp.float32)
        else:
            count, thresholds = 1, jnp.asarray(aimed)
        epoch = sharding.jit_replicated(epoch, self.mesh)
        device = sharding.replicate([data, train_metric, reference_metric], self.mesh)
        thresholds = sharding.replicate(thresholds, self.mesh)

        def pick(tree, k):
            return jax.tree.map(lambda x: x[k], tree) if batched else tree

        run = _Run(
            epoch=0,
            carry=carry,
            records=[],
            best=[None] * count,
            best_epoch=[-1] * count,
            last_good=[pick(carry.model.params, k) for k in range(count)],
        )
        fingerprint = None
        if checkpoint is not None:
            fingerprint = self._fingerprint(np.asarray(thresholds))
            if Path(checkpoint).exists():
                run = _Run.load(checkpoint, run, fingerprint)
        streak = np.zeros(count, int)
        for i in range(run.epoch, self.epochs):
            carry, record = epoch(
                sharding.replicate(run.carry, self.mesh),
                *device,
                sharding.replicate(jax.random.fold_in(k_train, i), self.mesh),
                thresholds,
            )
            record = jax.tree.map(np.asarray, jax.device_get(record))
            run.records.append(record)
            for k in range(count):
                mine = pick(record, k)
                if not bool(mine.finite):
                    streak[k] += 1
                    continue
                streak[k] = 0
                run.last_good[k] = pick(carry.model.params, k)
                if bool(mine.feasible):
                    run.best[k], run.best_epoch[k] = run.last_good[k], i
            run.carry, run.epoch = carry, i + 1
            if streak.max() > MAX_DIVERGED_EPOCHS:
                step = min(float(np.min(x)) for x in step_sizes(carry.model.opt_state))
                raise TrainingDiverged(
                    f"training diverged: {streak.max()} epochs in a row up to epoch "
                    f"{i + 1} gave non-finite losses or parameters, even with the "
                    f"step size cut to {step:g} of its value; nothing was saved "
                    "(try a smaller learning rate or fewer constraints)"
                )
            if checkpoint is not None and (
                run.epoch % checkpoint_every == 0 or run.epoch == self.epochs
            ):
                run.save(checkpoint, fingerprint)
            if callback is not None:
                callback(i + 1, self._record_dict(pick(record, 0)))
        records = [[pick(r, k) for r in run.records] for k in range(count)]
        best, best_epoch, last_good = run.best, run.best_epoch, run.last_good
        outcomes = []
        for k in range(count):
            result = FitResult(
                history=self._history(records[k]),
                best_epoch=best_epoch[k] if best[k] is not None else self.epochs - 1,
                feasible_during_training=best[k] is not None,
                diverged=not all(bool(r.finite) for r in records[k]),
            )
            outcomes.append((best[k] if best[k] is not None else last_good[k], result))
        self._backbone = self._build(stats, config)
        if not batched:
            self.params, self.result = outcomes[0]
        return outcomes

    def fit_frontier(
        self,
        df: pd.DataFrame,
        target: str | None,
        sweep: str,
        thresholds: Sequence[float],
        constraints: Sequence[str] | None = None,
        **fit_args,
    ) -> list[Synthesizer]:
        """Train one model per threshold of ``sweep`` in one vmapped program.

        Args:
          df, target: as for :meth:`fit`.
          sweep: the metric swept, e.g. ``"dcr_share"``; its constraint's operator
            comes from ``constraints`` if it is there, else ``<=`` / ``>=`` by the
            metric's privacy-safe side.
          thresholds: the ``K`` thresholds.
          constraints: the other constraints, held fixed.

        Returns:
          ``K`` fitted synthesizers sharing this one's encoder and splits; model
          ``k`` equals a separate :meth:`fit` with the same seed and threshold ``k``.
        """
        if sweep not in cons.METRICS:
            raise ValueError(
                f"unknown metric {sweep!r}; known: {', '.join(cons.METRICS)}"
            )
        fixed = [cons.parse(c) for c in (constraints or [])]
        fixed = [c for c in fixed if c.metric != sweep]
        op = "<=" if cons.METRICS[sweep].better == "lower" else ">="
        swept = cons.Constraint(sweep, op, float(thresholds[0]))
        self._prepare(df, target, [swept, *fixed], **fit_args)
        rows = np.stack(
            [
                _training_thresholds(
                    (cons.Constraint(sweep, op, float(t)), *fixed),
                    self.dual_config.margin,
                )
                for t in thresholds
            ]
        )
        outcomes = self._train(None, thresholds=rows)
        models = []
        for (params, result), value in zip(outcomes, thresholds, strict=True):
            clone = Synthesizer.__new__(Synthesizer)
            clone.__dict__.update(self.__dict__)
            clone.constraints = (cons.Constraint(sweep, op, float(value)), *fixed)
            clone.params, clone.result = params, result
            _rename_history(result.history, str(swept), str(clone.constraints[0]))
            models.append(clone)
        return models

    def _record_dict(self, record: EpochRecord) -> dict:
        out = {"utility": float(record.utility), "feasible": bool(record.feasible)}
        for index, constraint in enumerate(self.constraints):
            name = str(constraint)
            out[name] = {
                "exact": float(record.exact[index]),
                "surrogate": float(record.surrogate[index]),
                "multiplier": float(record.multiplier[index]),
                "penalty": float(record.penalty[index]),
            }
        return out

    def _history(self, records: list[EpochRecord]) -> dict:
        names = [str(c) for c in self.constraints]

        def per(field):
            stacked = np.stack([getattr(r, field) for r in records])
            return {n: stacked[:, i].tolist() for i, n in enumerate(names)}

        return {
            "epoch": list(range(1, len(records) + 1)),
            "utility": [float(r.utility) for r in records],
            "exact": per("exact"),
            "surrogate": per("surrogate"),
            "violation": per("violation"),
            "multiplier": per("multiplier"),
            "penalty": per("penalty"),
            "feasible": [bool(r.feasible) for r in records],
            "finite": [bool(r.finite) for r in records],
        }

    # ------------------------------------------------------------- sample
    def _check_fitted(self):
        if self.params is None or self.encoder is None:
            raise RuntimeError("the synthesizer is not fitted; call fit or load")

    def sample(
        self,
        n: int,
        *,
        condition: dict | tuple | None = None,
        seed: int | None = None,
        batch_size: int = 65_536,
    ) -> pd.DataFrame:
        """``n`` synthetic rows as a frame of the schema's columns.

        With an ``exact_match`` constraint, no emitted row equals a training row:
        matching rows are dropped and redrawn (a final check, not a hope). The
        rows are those of :meth:`iter_samples`, concatenated.

        Args:
          n: rows to emit.
          condition: ``{column: value}`` (one categorical column) to sample only
            rows of that category, through the conditional vector.
          seed: sampling seed (defaults to the synthesizer's).
          batch_size: rows per compiled sampling call (see :meth:`iter_samples`).
        """
        frames = list(
            self.iter_samples(n, condition=condition, seed=seed, chunk_rows=batch_size)
        )
        if not frames:
            return self._empty_frame()
        if len(frames) == 1:
            return frames[0]
        return pd.concat(frames, ignore_index=True)

    def iter_samples(
        self,
        n: int,
        *,
        condition: dict | tuple | None = None,
        seed: int | None = None,
        chunk_rows: int = 65_536,
        part: tuple[int, int] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """``n`` synthetic rows as a stream of frames, in bounded memory.

        Rows are drawn in blocks of :data:`SAMPLE_BLOCK`, block ``i`` from
        ``fold_in(key, i)``, so the stream is one fixed sequence per seed: the
        same rows come out whatever ``chunk_rows`` and whatever the mesh. Each
        chunk is one compiled call that returns hard rows in compact form
        (scalars and category codes, split over the mesh's devices); the device
        draws chunk ``i + 1`` while chunk ``i`` is decoded on the host. With an
        ``exact_match`` constraint, each chunk's rows that equal a training row
        are dropped and later blocks make up for them.

        ``part=(k, p)`` emits part ``k`` of ``p`` of an ``n``-row sample, for
        ``p`` hosts or jobs that each write their own share: :func:`part_rows`
        rows, drawn from the seed's blocks ``k, k + p, k + 2p, ...``. No two parts
        share a block, each part is fixed by ``(seed, k, p)``, and ``(0, 1)`` is
        the whole stream.

        Args:
          n: rows to emit in all (of all parts).
          condition: as for :meth:`sample`.
          seed: as for :meth:`sample`.
          chunk_rows: rows per compiled call, rounded up to whole blocks for every
            device; a frame holds at most that many rows.
          part: ``(index, count)`` with ``0 <= index < count``; ``None`` is
            ``(0, 1)``.

        Returns:
          An iterator of frames with the schema's columns and a fresh index each;
          their lengths add up to ``n`` (to ``part_rows(n, *part)`` for a part).

        Raises:
          ValueError: ``n`` negative, ``chunk_rows`` not positive, a bad ``part``
            or a bad ``condition`` (raised here, before the first frame).
        """
        self._check_fitted()
        if n < 0:
            raise ValueError("n must be non-negative")
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be positive")
        index, count = check_part(part)
        cond = self._condition_vector(condition)
        key = jax.random.key(self.seed + 1 if seed is None else seed)
        rows = part_rows(int(n), index, count)
        return self._stream(rows, cond, key, int(chunk_rows), (index, count))

    def sample_to_file(
        self,
        path: str | Path,
        n: int,
        *,
        condition: dict | tuple | None = None,
        seed: int | None = None,
        chunk_rows: int = 65_536,
        progress: Callable[[int], None] | None = None,
        row_group_rows: int = stream.ROW_GROUP_ROWS,
        part: tuple[int, int] | None = None,
    ) -> int:
        """Write ``n`` synthetic rows to a CSV or Parquet file (by suffix).

        The file is complete or absent: rows go to a temporary file in the same
        folder, renamed onto ``path`` after the last one, and removed on any error
        or interrupt. Memory stays bounded whatever ``n``: chunks are decoded while
        the device draws the next one and a writer thread encodes them (Parquet:
        row groups of ``row_group_rows`` rows, whatever ``chunk_rows``, so a seed
        gives the same file bytes).

        Args:
          path: a ``.csv``, ``.parquet`` or ``.pq`` file.
          n: rows to write.
          condition, seed, chunk_rows, part: as for :meth:`iter_samples`.
          progress: ``progress(rows_so_far)`` after each chunk.
          row_group_rows: rows per Parquet row group.

        Returns:
          The number of rows written (``n``, or the part's share of it).
        """
        stream.check_suffix(path)
        frames = self.iter_samples(
            n, condition=condition, seed=seed, chunk_rows=chunk_rows, part=part
        )
        return stream.write_frames(
            path,
            frames,
            empty=self._empty_frame(),
            progress=progress,
            row_group_rows=row_group_rows,
        )

    def set_mesh(self, mesh: jax.sharding.Mesh | None = None, *, devices=None):
        """Run on ``mesh`` (or on ``devices``) from now on; ``None`` for one device.

        A loaded model starts on JAX's default device; this spreads its sampling
        (or a further fit) over several. Returns ``self``.
        """
        self.mesh = sharding.resolve(mesh, devices)
        return self

    def _stream(
        self, n: int, cond, key, chunk_rows: int, part: tuple[int, int] = (0, 1)
    ) -> Iterator[pd.DataFrame]:
        """The generator behind :meth:`iter_samples` (arguments checked; ``n``
        rows of the part)."""
        if n == 0:
            return
        mesh = sharding.local(self.mesh)
        blocks, group = _chunk_plan(min(n, chunk_rows), sharding.size(mesh))
        rows_per_call = blocks * SAMPLE_BLOCK
        draw = self._compact_sampler(blocks, group, mesh)
        params = self._sampling_params(mesh)
        forbid = self._forbidden_rows()
        columns = self._learned_columns()
        limit = 1000 * rows_per_call + 10 * n

        def launch(call: int):
            # The blocks' keys (fold_in, split, counter_rng's key words) are
            # Threefry's, whose values depend on this flag: pin it, so a seed gives
            # the same rows whatever the global setting.
            with jax.threefry_partitionable(False):
                return draw(
                    params, key, np.uint32(call * blocks), cond, *map(np.uint32, part)
                )

        have, calls, barren, pending = 0, 1, 0, launch(0)
        while have < n:
            ahead = None
            if calls * rows_per_call < n:
                ahead, calls = launch(calls), calls + 1
            values, codes = jax.device_get(pending)
            frame = self.encoder.decode_compact(
                values.reshape(rows_per_call, values.shape[-1]),
                codes.reshape(rows_per_call, codes.shape[-1]),
            )
            if forbid is not None:
                hashes = _row_hashes(frame, columns)
                frame = frame[~np.isin(hashes, forbid)]
            frame = frame.iloc[: n - have].reset_index(drop=True)
            have += len(frame)
            barren = 0 if len(frame) else barren + 1
            if len(frame):
                yield frame
            if have < n and (calls * rows_per_call > limit or barren >= BARREN_CALLS):
                raise RuntimeError(
                    "could not draw enough rows that differ from every training row "
                    f"({have} of {n} after {calls * rows_per_call} draws)"
                )
            if have < n and ahead is None:
                ahead, calls = launch(calls), calls + 1
            pending = ahead

    def _compact_sampler(self, blocks: int, group: int, mesh):
        """The jitted draw of ``blocks`` blocks of compact hard rows (cached).

        ``draw(params, key, first, cond, offset=0, stride=1) -> (values, codes)``
        draws blocks ``offset + stride * j`` for ``j = first, ..., first + blocks
        - 1`` (``offset`` and ``stride`` pick a part's share, see
        :meth:`iter_samples`): a loop over steps of ``group`` blocks per device (a
        step's rows stay in cache; one wide batch spills it), each step's blocks
        split over ``mesh``. The outputs have shape ``(steps,
        blocks per step, SAMPLE_BLOCK, k)``, blocks in order when flattened.
        """
        cache = getattr(self, "_samplers", None)
        if cache is None or cache[0] is not self._backbone:
            cache = self._samplers = (self._backbone, {})
        found = cache[1].get((blocks, group, mesh))
        if found is not None:
            return found
        sample = self._backbone.sample_compact
        width = group * sharding.size(mesh)
        split = None
        if mesh is not None:
            split = jax.sharding.NamedSharding(
                mesh, jax.sharding.PartitionSpec(None, sharding.data_axis(mesh))
            )

        def draw(params, key, first, cond, offset=0, stride=1):
            index = first + jnp.arange(blocks, dtype=jnp.uint32)
            index = jnp.uint32(offset) + jnp.uint32(stride) * index
            index = index.reshape(blocks // width, width)
            if split is not None:
                index = jax.lax.with_sharding_constraint(index, split)

            def block(i):
                return sample(params, jax.random.fold_in(key, i), SAMPLE_BLOCK, cond)

            return jax.lax.map(jax.vmap(block), index)

        found = jax.jit(draw) if split is None else jax.jit(draw, out_shardings=split)
        cache[1][(blocks, group, mesh)] = found
        return found

    def _sampling_params(self, mesh):
        """The parameters, replicated over the sampling mesh (cached)."""
        placed = getattr(self, "_placed", None)
        if placed is None or placed[0] is not self.params or placed[1] != mesh:
            value = self.params
            if mesh is not None:
                value = sharding.replicate(self.params, mesh)
            placed = self._placed = (self.params, mesh, value)
        return placed[2]

    def _empty_frame(self) -> pd.DataFrame:
        """Zero rows with the schema's columns and dtypes."""
        layout = self.encoder.layout
        return self.encoder.decode_compact(
            np.zeros((0, len(layout.scalar_blocks)), np.float32),
            np.zeros((0, len(layout.softmax_blocks)), np.int32),
        )

    def _learned_columns(self) -> list[str]:
        return list(dict.fromkeys(b.column for b in self.encoder.layout.blocks))

    def _forbidden_rows(self) -> np.ndarray | None:
        """Hashes of the training rows' learned columns, if exact matches are banned.

        The model file keeps these 64-bit hashes (not the rows) so that a loaded
        model still guarantees ``exact_match == 0``; like the parameters, they are
        derived from patient rows, so a model file is to be kept as confidential as
        the table (share synthetic rows, not model files).
        """
        if not any(c.metric == "exact_match" for c in self.constraints):
            return None
        return self._train_hashes

    def _condition_vector(self, condition):
        if condition is None:
            return None
        if isinstance(condition, dict):
            if len(condition) != 1:
                raise ValueError("condition must name exactly one column")
            ((column, value),) = condition.items()
        else:
            column, value = condition
        if column not in self._categorical_columns():
            raise ValueError(
                f"condition column {column!r} is not a learned categorical column"
            )
        categories = self.encoder._categorical[column].categories
        matches = [i for i, c in enumerate(categories) if str(c) == str(value)]
        if not matches:
            raise ValueError(
                f"condition value {value!r} is not a category of {column!r}; "
                f"known: {[str(c) for c in categories][:20]}"
            )
        return jnp.asarray(
            heads.condition_vector(self.encoder.layout, column, matches[0])
        )

    # -------------------------------------------------------------- audit
    def _load_frames(self) -> dict[str, pd.DataFrame]:
        if self._frames:
            return self._frames
        path = self.data_info.get("path")
        if not path:
            raise ValueError(
                "this model does not know its training table; pass data= to audit"
            )
        if not Path(path).is_file():
            raise ValueError(
                f"this model was fitted on {path!r}, which is gone; pass the "
                "training table as data= (--data)"
            )
        return self.attach_data(io.read_table(path))

    def attach_data(self, df: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Re-attach the training table of a loaded model (checked by hash).

        Raises:
          SchemaError: ``df`` lacks columns of the model's schema or has columns
            the schema does not list (a table of another study), or has the same
            columns but other rows (its SHA-256 differs).
        """
        names = self.encoder.schema.names
        present = [str(c) for c in df.columns]
        missing = [n for n in names if n not in present]
        extra = [n for n in present if n not in names]
        if missing or extra:
            found = [f"lacks its columns {missing}"] if missing else []
            found += [f"has columns it does not list {extra}"] if extra else []
            raise SchemaError(
                "the table does not match this model's schema: it "
                + " and ".join(found)
            )
        if _frame_digest(df) != self.data_info.get("sha256"):
            raise SchemaError(
                "the table differs from the one this model was fitted on (same "
                "columns, other values: SHA-256 mismatch)"
            )
        split = self.data_info["split"]
        self._frames = {
            part: df.iloc[np.asarray(split[part], int)].reset_index(drop=True)
            for part in ("train", "reference", "holdout")
        }
        return self._frames

    def audit(
        self,
        synthetic: pd.DataFrame | None = None,
        *,
        n: int | None = None,
        data: pd.DataFrame | None = None,
    ) -> dict:
        """The exact privacy audit on the holdout, and each constraint's status.

        Args:
          synthetic: rows to audit; ``n`` fresh rows (default: as many as the
            training table) when ``None``.
          n: rows to draw when ``synthetic`` is ``None``.
          data: the training table, for a loaded model that cannot re-read it.

        Returns:
          ``{"privacy": {metric: {"value", "baseline"}}, "constraints": [{"name",
          "metric", "op", "threshold", "value", "met"}], "all_met": bool, ...}``.
        """
        self._check_fitted()
        frames = self.attach_data(data) if data is not None else self._load_frames()
        train, holdout = frames["train"], frames["holdout"]
        if synthetic is None:
            synthetic = self.sample(n or len(train))
        return self._audit_views(*self.metric_views(synthetic, train, holdout))

    def _audit_views(self, syn_m, train_m, hold_m) -> dict:
        """:meth:`audit` on rows already in the metric space."""
        from psygentab_jax._src import audit as audit_lib

        report = audit_lib.audit_privacy(
            syn_m,
            train_m,
            hold_m,
            columns=self.encoder.metric_space.columns,
            seed=self.seed,
        )
        values = _constraint_values(report, syn_m, train_m, self._context())
        statuses = []
        for constraint in self.constraints:
            value = values[constraint.metric]
            statuses.append(
                {
                    "name": str(constraint),
                    "metric": constraint.metric,
                    "op": constraint.op,
                    "threshold": constraint.threshold,
                    "value": value,
                    "met": constraint.met(value),
                }
            )
        return {
            "rows": {
                "synthetic": len(syn_m),
                "train": len(train_m),
                "holdout": len(hold_m),
            },
            "privacy": _privacy_table(report),
            "constraints": statuses,
            "all_met": all(s["met"] for s in statuses),
            "report": report.to_dict(),
        }

    def metric_views(self, *frames: pd.DataFrame) -> list[np.ndarray]:
        """Each frame in the audit's metric space (unseen categories tolerated)."""
        return [self.encoder.to_metric(f, unknown="ignore") for f in frames]

    def evaluate(self, synthetic: pd.DataFrame | None = None, *, data=None) -> dict:
        """Utility (TRTR / TSTR / TRTS) and fidelity on the holdout."""
        from psygentab_jax._src import evaluate as evaluate_lib

        self._check_fitted()
        frames = self.attach_data(data) if data is not None else self._load_frames()
        train, holdout = frames["train"], frames["holdout"]
        if synthetic is None:
            synthetic = self.sample(len(train))
        target = self.encoder.schema.target
        if target is None:
            return {
                "fidelity": evaluate_lib.fidelity(
                    train, synthetic, schema=self.encoder.schema
                )
            }
        return evaluate_lib.evaluate(
            train,
            holdout,
            synthetic,
            target,
            schema=self.encoder.schema,
            seed=self.seed,
        )

    def report(
        self,
        path: str | Path,
        synthetic: pd.DataFrame | None = None,
        *,
        data: pd.DataFrame | None = None,
        frontier: dict | None = None,
    ) -> dict:
        """Audit, evaluate and write the HTML report (and its JSON beside it).

        Returns:
          The numbers written: ``{"privacy", "constraints", "utility", "fidelity",
          ...}``.
        """
        from psygentab_jax._src import audit as audit_lib
        from psygentab_jax._src.report import write_report

        self._check_fitted()
        frames = self.attach_data(data) if data is not None else self._load_frames()
        if synthetic is None:
            synthetic = self.sample(len(frames["train"]))
        syn_m, train_m, hold_m = self.metric_views(
            synthetic, frames["train"], frames["holdout"]
        )
        audit = self._audit_views(syn_m, train_m, hold_m)
        results = {"privacy": audit["privacy"], "constraints": audit["constraints"]}
        results.update(self.evaluate(synthetic))
        write_report(
            path,
            results,
            real=frames["train"],
            synthetic=synthetic,
            schema=self.encoder.schema,
            dcr={
                "synthetic": audit_lib.dcr(syn_m, train_m),
                "holdout": audit_lib.dcr(hold_m, train_m),
            },
            history=self.result.history if self.result else None,
            frontier=frontier,
            title=f"psygentab report ({self.backbone_name})",
        )
        return results

    # ---------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Write the model to one file (msgpack; no pickle), atomically.

        Raises:
          ValueError: the parameters are not all finite (nothing is written).
        """
        self._check_fitted()
        if not bool(_all_finite(self.params)):
            raise ValueError("refusing to save a model with non-finite parameters")
        payload = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "meta": json.dumps(
                {
                    "backbone": self.backbone_name,
                    "epochs": self.epochs,
                    "seed": self.seed,
                    "holdout": self.holdout_share,
                    "reference": self.reference_share,
                    "dual": dataclasses.asdict(self.dual_config),
                    "config": dataclasses.asdict(self._model_cfg),
                    "constraints": [str(c) for c in self.constraints],
                    "encoder": self.encoder.state_dict(),
                    "data": self.data_info,
                    "result": dataclasses.asdict(self.result) if self.result else None,
                    "category_counts": [
                        c.tolist() for c in self._stats.category_counts
                    ],
                    "n_rows": self._stats.n_rows,
                },
                default=_json_default,
            ),
            "params": flax.serialization.to_bytes(self.params),
            "train_hashes": np.asarray(self._train_hashes, "<u8").tobytes(),
        }
        return io.write_bytes(path, msgpack.packb(payload, use_bin_type=True))

    @classmethod
    def load(cls, path: str | Path) -> Synthesizer:
        """Read a model written by :meth:`save`; never executes code from the file.

        The file is msgpack holding plain data (strings, numbers, raw bytes) and
        JSON; nothing in it is unpickled or evaluated, and an array's bytes are
        only ever read with ``np.frombuffer``.

        Raises:
          ValueError: not a model file, a truncated or damaged one, or another
            format version.
        """
        path = Path(path)
        try:
            payload = msgpack.unpackb(path.read_bytes(), raw=False)
        except OSError as err:
            raise ValueError(f"cannot read model file {str(path)!r}: {err}") from None
        except Exception:  # msgpack raises several unrelated types on bad bytes
            raise ValueError(
                f"{str(path)!r} is not a psygentab model file (unreadable or truncated)"
            ) from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} is not a psygentab model file")
        version = payload.get("version")
        if type(version) is not int or version != FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has model format version {version!r}; "
                f"this psygentab reads version {FORMAT_VERSION}"
            )
        try:
            return cls._from_payload(payload, path)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ValueError(
                f"{str(path)!r} is a damaged psygentab model file "
                f"({type(err).__name__}: {detail})"
            ) from None

    @classmethod
    def _from_payload(cls, payload: dict, path: Path) -> Synthesizer:
        """The model described by an unpacked, version-checked payload."""
        meta = json.loads(payload["meta"])
        config_cls = GANConfig if meta["backbone"] == "gan" else VAEConfig
        config = config_cls(
            **{
                k: tuple(v) if isinstance(v, list) else v
                for k, v in meta["config"].items()
            }
        )
        synth = cls(
            backbone=meta["backbone"],
            epochs=meta["epochs"],
            seed=meta["seed"],
            holdout=meta["holdout"],
            reference=meta["reference"],
            dual=DualConfig(**meta["dual"]),
            config=config,
        )
        synth.encoder = TableEncoder.from_state_dict(meta["encoder"])
        synth.constraints = tuple(cons.parse(c) for c in meta["constraints"])
        synth.data_info = meta["data"]
        synth._train_hashes = np.frombuffer(payload["train_hashes"], "<u8")
        synth._model_cfg = config
        synth._stats = heads.DataStats(
            tuple(np.asarray(c) for c in meta["category_counts"]), meta["n_rows"]
        )
        synth._backbone = synth._build(synth._stats, config)
        template = synth._backbone.init(jax.random.key(0)).params
        try:
            synth.params = flax.serialization.from_bytes(template, payload["params"])
        except Exception:
            raise ValueError(
                "its parameters do not fit the model's architecture"
            ) from None
        if meta.get("result"):
            synth.result = FitResult(**meta["result"])
        return synth


def check_part(part: tuple[int, int] | None) -> tuple[int, int]:
    """``part`` as ``(index, count)`` (``None`` is ``(0, 1)``), or a ValueError."""
    if part is None:
        return 0, 1
    try:
        index, count = (operator.index(v) for v in part)
    except (TypeError, ValueError):
        raise ValueError(f"part must be (index, count), not {part!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"part needs 0 <= index < count, not {part!r}")
    return index, count


def part_rows(n: int, index: int, count: int) -> int:
    """Rows of part ``index`` of ``count`` of an ``n``-row sample: ``n // count``,
    one more for the first ``n % count`` parts."""
    return n // count + (index < n % count)


def _chunk_plan(rows: int, devices: int) -> tuple[int, int]:
    """``(blocks, group)`` of a sampling call that covers ``rows`` rows.

    Every device draws ``group`` blocks per step and the same number of steps, so
    ``blocks`` is ``rows`` rounded up to whole steps on every device.
    """
    per_device = -(-rows // (SAMPLE_BLOCK * devices))
    group = max(1, min(SAMPLE_GROUP, per_device))
    return -(-per_device // group) * group * devices, group


def _training_thresholds(constraint_list, margin: float) -> np.ndarray:
    """``(m,)`` thresholds the training aims at: ``margin`` inside the stated ones."""
    out = []
    for c in constraint_list:
        shift = 0.0 if c.metric == "exact_match" or c.op == "==" else margin
        out.append(c.threshold - shift if c.op == "<=" else c.threshold + shift)
    return np.asarray(out, np.float32)


def _rename_history(history: dict, old: str, new: str) -> None:
    """Re-key a history's per-constraint series from ``old`` to ``new``."""
    for series in history.values():
        if isinstance(series, dict) and old in series:
            series[new] = series.pop(old)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value)}")


def _frame_digest(df: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(df, index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes())
    digest.update(json.dumps([str(c) for c in df.columns]).encode())
    return digest.hexdigest()


def _row_hashes(frame: pd.DataFrame, columns) -> np.ndarray:
    """``(n,)`` uint64 hashes of each row's values on ``columns``."""
    if len(frame) == 0:
        return np.zeros(0, np.uint64)
    return pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()


def _constraint_values(report, synthetic, train, context) -> dict[str, float]:
    """Each constraint metric's exact value from the audit (fidelity: computed)."""
    values = {
        "dcr_share": report.dcr_share,
        "exact_match": report.exact_match_rate,
        "near_duplicate": report.near_duplicate_rate,
        "nndr": report.nndr_median,
        "dcr_p05_ratio": report.dcr_p5_ratio,
        # The stronger of the two membership attacks.
        "mia_auc": max(report.mia_distance_auc, report.mia_density_auc),
        "paper_p": report.privacy_score,
    }
    train_j = jnp.asarray(train)
    refs = cons.make_references(train_j, train_j[:2], context)
    for name in ("class_share_gap", "corr_gap"):
        value = cons.metric_value(
            name, jnp.asarray(synthetic), refs, context, soft=False
        )
        values[name] = float(value)
    return {k: float(v) for k, v in values.items()}


_BASELINES = (
    ("dcr_median", "dcr_median_holdout"),
    ("dcr_p5", "dcr_p5_holdout"),
    ("dcr_share", "dcr_share_holdout"),
    ("nndr_median", "nndr_median_holdout"),
    ("exact_match_rate", "exact_match_rate_holdout"),
    ("near_duplicate_rate", "near_duplicate_rate_holdout"),
    ("duplicate_rate", "duplicate_rate_holdout"),
    ("mia_distance_auc", "mia_distance_auc_holdout"),
    ("privacy_score", "privacy_score_holdout"),
)


def _privacy_table(report) -> dict:
    """``{metric: {"value", "baseline"}}``: each figure beside a fresh patient's."""
    data = report.to_dict()
    table = {
        name: {"value": float(data[name]), "baseline": float(data[baseline])}
        for name, baseline in _BASELINES
    }
    table["mia_density_auc"] = {
        "value": float(data["mia_density_auc"]),
        "baseline": 0.5,
    }
    return table


def frontier_points(
    models: Sequence[Synthesizer], metric: str, *, utility_model: str = "boosting"
) -> dict:
    """Audit and evaluate each frontier model: one (privacy, utility) point each.

    Returns:
      ``{"points": [{"label", "threshold", "privacy", "utility", "met"}], "x_label",
      "y_label"}``, privacy the exact audited ``metric`` on the holdout and utility
      the TSTR ROC-AUC of ``utility_model``.
    """
    points = []
    for model in models:
        synthetic = model.sample(len(model._frames["train"]))
        audit = model.audit(synthetic)
        (status,) = [s for s in audit["constraints"] if s["metric"] == metric]
        utility = model.evaluate(synthetic)
        auc = _tstr_auc(utility, utility_model)
        points.append(
            {
                "label": f"psygentab {model.backbone_name} {status['name']}",
                "threshold": status["threshold"],
                "privacy": status["value"],
                "utility": auc,
                "met": bool(audit["all_met"]),
            }
        )
    return {"points": points, "x_label": metric, "y_label": "TSTR ROC-AUC"}


def _tstr_auc(results: dict, model: str) -> float:
    """TSTR ROC-AUC from :func:`psygentab_jax._src.evaluate.evaluate` output."""
    utility = results.get("utility", results)
    scheme = utility.get("tstr") or utility.get("TSTR") or {}
    for name, scores in scheme.items():
        if model in name.lower() and isinstance(scores, dict):
            value = scores.get("roc_auc")
            return float("nan") if value is None else float(value)
    return float("nan")
