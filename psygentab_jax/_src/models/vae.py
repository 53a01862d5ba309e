"""A conditional variational autoencoder in the manner of TVAE.

Encoder ``[x, cond] -> (mu, log var)``, decoder ``[z, cond] -> raw outputs``; the
reconstruction loss is a Gaussian log-likelihood with a learned sigma per entry on
scalar blocks and a cross-entropy on softmax blocks, scaled by ``loss_factor``,
plus the KL divergence to the standard normal prior. The conditional vector (one
categorical column's category, taken from the row itself while training) enters
both networks, so conditional sampling needs no rejection.

Two deliberate changes from TVAE: the decoder is conditional (a CVAE), and a
softmax block is sampled from its categorical distribution (Gumbel) rather than
taken at its arg max, so a decoded category follows the decoder's probabilities.

References:
  Xu, Skoularidou, Cuesta-Infante, Veeramachaneni. Modeling Tabular Data using
  Conditional GAN. NeurIPS 2019 (TVAE).
  Kingma, Welling. Auto-Encoding Variational Bayes. ICLR 2014.
  Sohn, Lee, Yan. Learning Structured Output Representation using Deep
  Conditional Generative Models. NeurIPS 2015 (CVAE).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from psygentab_jax._src import counter_rng, sharding
from psygentab_jax._src.layout import Layout
from psygentab_jax._src.models import heads
from psygentab_jax._src.models.base import (
    Backbone,
    PenaltyFn,
    TrainState,
    epoch_mean,
    no_penalty,
    with_step_size,
)

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Hyperparameters of the conditional VAE (SDV's TVAE defaults).

    Attributes:
      embedding_dim: size of the latent z.
      compress_dims: widths of the encoder's hidden layers.
      decompress_dims: widths of the decoder's hidden layers.
      lr: Adam learning rate.
      weight_decay: L2 coefficient added to the gradients (TVAE's ``l2scale``).
      batch_size: rows per step.
      loss_factor: weight of the reconstruction loss against the KL term.
      sigma_init: initial sigma of every scalar entry.
      sigma_range: bounds sigma is clipped to after each step.
      tau: Gumbel-softmax temperature of soft samples.
      penalty_batch: rows drawn from the prior per step for the penalty hook.
    """

    embedding_dim: int = 128
    compress_dims: tuple[int, ...] = (128, 128)
    decompress_dims: tuple[int, ...] = (128, 128)
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 500
    loss_factor: float = 2.0
    sigma_init: float = 0.1
    sigma_range: tuple[float, float] = (0.01, 1.0)
    tau: float = 0.2
    penalty_batch: int = 500


class Encoder(nn.Module):
    """``[x, cond]`` (b, d + c) to the posterior's mean and log variance (b, e)."""

    hidden: tuple[int, ...]
    latent: int

    @nn.compact
    def __call__(self, inputs: Array) -> tuple[Array, Array]:
        h = inputs
        for width in self.hidden:
            h = nn.relu(nn.Dense(width)(h))
        return nn.Dense(self.latent)(h), nn.Dense(self.latent)(h)


class Decoder(nn.Module):
    """``[z, cond]`` (b, e + c) to raw outputs (b, d)."""

    hidden: tuple[int, ...]
    out: int

    @nn.compact
    def __call__(self, inputs: Array) -> Array:
        h = inputs
        for width in self.hidden:
            h = nn.relu(nn.Dense(width)(h))
        return nn.Dense(self.out)(h)


def make_vae(
    layout: Layout,
    data_stats: heads.DataStats,
    config: VAEConfig | None = None,
    *,
    target: str | None = None,
    penalty_fn: PenaltyFn | None = None,
    batch_sharding: jax.sharding.NamedSharding | None = None,
) -> Backbone:
    """Builds a conditional VAE backbone.

    Args:
      layout: the encoded table's layout.
      data_stats: category counts of the training table (for unconditional
        sampling).
      config: hyperparameters; SDV's TVAE defaults when ``None``.
      target: a categorical column whose training frequencies drive unconditional
        sampling; ``None`` picks a column per row uniformly.
      penalty_fn: ``penalty_fn(fake_rows (b, d), penalty_args) -> (scalar, aux)``,
        evaluated on ``config.penalty_batch`` soft rows sampled from the prior and
        added to the loss at every step.
      batch_sharding: splits each minibatch's rows across a mesh's data axis
        (:func:`psygentab_jax._src.sharding.rows`); ``None`` leaves placement to
        JAX. Placement only: the results are one device's up to the order of
        float sums.

    Returns:
      The backbone (see :mod:`psygentab_jax._src.models.base`).
    """
    config = config or VAEConfig()
    use_penalty = penalty_fn is not None
    penalty_fn = penalty_fn or no_penalty
    spec = heads.CondSpec.from_layout(layout)
    d, c, e = layout.width, spec.width, config.embedding_dim
    frequencies = jnp.asarray(data_stats.frequencies())
    table = heads.condition_table(spec, data_stats.frequencies())
    target_column = None if target is None else spec.index_of(target)
    scalar = jnp.asarray(
        [b.kind == "scalar" for b in layout.blocks for _ in range(b.width)]
    )
    scalar_at = jnp.asarray([b.start for b in layout.scalar_blocks], jnp.int32)

    def shard(x):
        return sharding.constrain_rows(x, batch_sharding)

    encoder = Encoder(config.compress_dims, e)
    decoder = Decoder(config.decompress_dims, d)
    optimizer = with_step_size(
        optax.chain(
            optax.add_decayed_weights(config.weight_decay), optax.adam(config.lr)
        )
    )

    def init(key: Array) -> TrainState:
        k_enc, k_dec = jax.random.split(key)
        params = {
            "encoder": encoder.init(k_enc, jnp.zeros((1, d + c))),
            "decoder": decoder.init(k_dec, jnp.zeros((1, e + c))),
            "sigma": jnp.full((d,), config.sigma_init, jnp.float32),
        }
        zero = jnp.zeros((), jnp.int32)
        return TrainState(params, {"vae": optimizer.init(params)}, zero, zero)

    def conditions(key, n, cond):
        if not c:
            return jnp.zeros((n, 0))
        if cond is None:
            return heads.sample_conditions(key, spec, frequencies, n, target_column)
        return jnp.broadcast_to(jnp.asarray(cond, jnp.float32), (n, c))

    def decode(params, key, z, cond, hard):
        k_act, k_noise = jax.random.split(key)
        logits = decoder.apply(params["decoder"], jnp.concatenate([z, cond], axis=1))
        rows = heads.activate(logits, layout, k_act, tau=config.tau, hard=hard)
        noise = params["sigma"] * jax.random.normal(k_noise, rows.shape)
        rows = jnp.where(scalar, jnp.clip(rows + noise, -1.0, 1.0), rows)
        return heads.force_condition(rows, cond, spec) if c else rows

    def loss_fn(params, rows, key, penalty_args):
        k_cond, k_eps, k_prior = jax.random.split(key, 3)
        b = rows.shape[0]
        if not c:
            cond = jnp.zeros((b, 0))
        elif target_column is not None:
            # Always the target: sampling conditions on it, so the decoder must
            # learn p(x | target, z) with z free of the class (Sohn et al., 2015).
            cond = heads.column_conditions(rows, spec, target_column)
        else:
            cond = heads.row_conditions(k_cond, rows, spec)
        mu, logvar = encoder.apply(
            params["encoder"], jnp.concatenate([rows, cond], axis=1)
        )
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(k_eps, mu.shape)
        logits = decoder.apply(params["decoder"], jnp.concatenate([z, cond], axis=1))

        sigma = params["sigma"]
        gaussian = (rows - jnp.tanh(logits)) ** 2 / (2 * sigma**2) + jnp.log(sigma)
        gaussian = jnp.sum(jnp.where(scalar, gaussian, 0.0), axis=1)
        categorical = heads.softmax_cross_entropy(logits, rows, layout)
        reconstruction = jnp.mean(gaussian + categorical)
        kl = -0.5 * jnp.mean(jnp.sum(1 + logvar - mu**2 - jnp.exp(logvar), axis=1))

        if use_penalty:
            k_z, k_c, k_dec = jax.random.split(k_prior, 3)
            m = config.penalty_batch
            prior_z = shard(jax.random.normal(k_z, (m, e)))
            fake = decode(params, k_dec, prior_z, conditions(k_c, m, None), False)
            penalty, aux = penalty_fn(fake, penalty_args)
        else:
            penalty, aux = penalty_fn(rows, penalty_args)
        loss = config.loss_factor * reconstruction + kl + penalty
        return loss, {
            "loss": loss,
            "reconstruction": reconstruction,
            "kl": kl,
            "penalty": penalty,
            "penalty_aux": aux,
        }

    def epoch(state: TrainState, data: Array, key: Array, penalty_args=None):
        k_batches, k_steps = jax.random.split(key)
        batches = heads.minibatch_indices(k_batches, data.shape[0], config.batch_size)

        def step(carry, inputs):
            params, opt_state = carry
            rows, key = inputs
            grads, metrics = jax.grad(loss_fn, has_aux=True)(
                params, shard(data[shard(rows)]), key, penalty_args
            )
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            params = {**params, "sigma": jnp.clip(params["sigma"], *config.sigma_range)}
            return (params, opt_state), metrics

        keys = jax.random.split(k_steps, batches.shape[0])
        (params, opt_state), metrics = jax.lax.scan(
            step, (state.params, state.opt_state["vae"]), (batches, keys)
        )
        steps = batches.shape[0]
        new_state = TrainState(
            params, {"vae": opt_state}, state.step + steps, state.epoch + 1
        )
        return new_state, epoch_mean(metrics)

    def sample(params, key, n: int, cond=None, *, hard: bool = False) -> Array:
        k_cond, k_z, k_dec = jax.random.split(key, 3)
        z = jax.random.normal(k_z, (n, e))
        return decode(params, k_dec, z, conditions(k_cond, n, cond), hard)

    def sample_compact(params, key, n: int, cond=None) -> tuple[Array, Array]:
        k_cond, k_z, k_pick, k_noise = jax.random.split(key, 4)
        cond = heads.requested_conditions(
            cond,
            n,
            c,
            lambda: heads.draw_conditions(k_cond, spec, table, n, target_column),
        )
        z = counter_rng.normal(k_z, (n, e))
        logits = decoder.apply(params["decoder"], jnp.concatenate([z, cond], axis=1))
        picks = counter_rng.uniform(k_pick, (n, len(layout.softmax_blocks)))
        values, codes = heads.hard_compact(logits, layout, picks)
        noise = params["sigma"][scalar_at] * counter_rng.normal(k_noise, values.shape)
        values = jnp.clip(values + noise, -1.0, 1.0)
        codes = heads.force_codes(codes, cond, spec, layout) if c else codes
        return values, codes

    return Backbone(
        "vae", layout, config, c, init, epoch, sample, sample_compact=sample_compact
    )
