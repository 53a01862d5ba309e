"""A conditional WGAN-GP generator in the manner of CTGAN.

The generator maps ``[z, cond]`` through residual MLP blocks (each block's output
is concatenated to its input) to raw outputs, then per-block activations. The
critic reads ``pac`` rows at once (PacGAN) with their conditional vectors and is
trained with the WGAN gradient penalty. Conditions come from training-by-sampling
and the generator pays a cross-entropy when its output misses the condition.

One deliberate change from CTGAN: the residual blocks use layer normalization
instead of batch normalization, so a generated row does not depend on the other
rows of its batch and ``sample`` is a pure function of ``(params, key)``.

An epoch runs ``ceil(n / batch_size)`` steps (CTGAN: ``floor``); with categorical
columns the critic's real rows come from training-by-sampling, not from the
epoch's shuffled minibatches.

References:
  Xu, Skoularidou, Cuesta-Infante, Veeramachaneni. Modeling Tabular Data using
  Conditional GAN. NeurIPS 2019.
  Gulrajani, Ahmed, Arjovsky, Dumoulin, Courville. Improved Training of
  Wasserstein GANs. NeurIPS 2017.
  Lin, Khetan, Fanti, Oh. PacGAN: The power of two samples in generative
  adversarial networks. NeurIPS 2018.
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

# TODO(gan-stability): category shares of unconditional samples swing by several
# points from one epoch to the next on small tables; an exponential moving average
# of the generator's parameters would damp this and is not implemented.


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """Hyperparameters of the conditional GAN (SDV's CTGAN defaults).

    Attributes:
      embedding_dim: size of the noise vector z.
      generator_dim: widths of the generator's residual blocks.
      discriminator_dim: widths of the critic's hidden layers.
      generator_lr: Adam learning rate of the generator.
      discriminator_lr: Adam learning rate of the critic.
      betas: Adam's (b1, b2).
      weight_decay: L2 coefficient added to the gradients (as torch's Adam does).
      batch_size: rows per step; a multiple of ``pac``.
      discriminator_steps: critic steps per generator step.
      pac: rows the critic reads together.
      gradient_penalty: weight of the WGAN gradient penalty.
      dropout: critic dropout rate (0 disables it).
      tau: Gumbel-softmax temperature.
      min_steps: generator steps per epoch at least (CTGAN: one pass, so a
        400-row table gets a single step per epoch); extra steps draw further
        shuffled passes over the rows.
    """

    embedding_dim: int = 128
    generator_dim: tuple[int, ...] = (256, 256)
    discriminator_dim: tuple[int, ...] = (256, 256)
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 1e-6
    batch_size: int = 500
    discriminator_steps: int = 1
    pac: int = 10
    gradient_penalty: float = 10.0
    dropout: float = 0.5
    tau: float = 0.2
    min_steps: int = 1


class Generator(nn.Module):
    """Residual MLP from ``[z, cond]`` (b, e + c) to raw outputs (b, d)."""

    hidden: tuple[int, ...]
    out: int

    @nn.compact
    def __call__(self, inputs: Array) -> Array:
        h = inputs
        for width in self.hidden:
            block = nn.relu(nn.LayerNorm()(nn.Dense(width)(h)))
            h = jnp.concatenate([block, h], axis=-1)
        return nn.Dense(self.out)(h)


class Critic(nn.Module):
    """PacGAN critic: (b, d + c) rows, read ``pac`` at a time, to (b // pac,) scores."""

    hidden: tuple[int, ...]
    pac: int
    dropout: float

    @nn.compact
    def __call__(self, rows: Array, *, deterministic: bool) -> Array:
        h = rows.reshape(-1, self.pac * rows.shape[-1])
        for width in self.hidden:
            h = nn.leaky_relu(nn.Dense(width)(h), 0.2)
            if self.dropout > 0:
                h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
        return nn.Dense(1)(h)[:, 0]


def _adam(lr: float, config: GANConfig) -> optax.GradientTransformation:
    return with_step_size(
        optax.chain(
            optax.add_decayed_weights(config.weight_decay),
            optax.adam(lr, b1=config.betas[0], b2=config.betas[1]),
        )
    )


def make_gan(
    layout: Layout,
    data_stats: heads.DataStats,
    config: GANConfig | None = None,
    *,
    target: str | None = None,
    penalty_fn: PenaltyFn | None = None,
    batch_sharding: jax.sharding.NamedSharding | None = None,
) -> Backbone:
    """Builds a conditional WGAN-GP backbone.

    Args:
      layout: the encoded table's layout.
      data_stats: category counts of the training table (for unconditional
        sampling).
      config: hyperparameters; SDV's CTGAN defaults when ``None``.
      target: a categorical column whose training frequencies drive unconditional
        sampling; ``None`` picks a column per row uniformly.
      penalty_fn: ``penalty_fn(fake_rows (b, d), penalty_args) -> (scalar, aux)``,
        added to the generator loss at every generator step.
      batch_sharding: splits each minibatch's rows (real rows and conditions)
        across a mesh's data axis (:func:`psygentab_jax._src.sharding.rows`);
        ``None`` leaves placement to JAX. With ``batch_size`` a multiple of
        ``pac`` times the devices, every device holds whole packs.

    Returns:
      The backbone (see :mod:`psygentab_jax._src.models.base`).
    """
    config = config or GANConfig()
    if config.batch_size % config.pac:
        raise ValueError("batch_size must be a multiple of pac")
    penalty_fn = penalty_fn or no_penalty
    spec = heads.CondSpec.from_layout(layout)
    d, c, e = layout.width, spec.width, config.embedding_dim
    frequencies = jnp.asarray(data_stats.frequencies())
    table = heads.condition_table(spec, data_stats.frequencies())
    target_column = None if target is None else spec.index_of(target)

    def shard(x):
        return sharding.constrain_rows(x, batch_sharding)

    generator = Generator(config.generator_dim, d)
    critic = Critic(config.discriminator_dim, config.pac, config.dropout)
    g_opt = _adam(config.generator_lr, config)
    c_opt = _adam(config.discriminator_lr, config)

    def init(key: Array) -> TrainState:
        k_gen, k_critic = jax.random.split(key)
        params = {
            "generator": generator.init(k_gen, jnp.zeros((1, e + c))),
            "critic": critic.init(
                k_critic, jnp.zeros((config.pac, d + c)), deterministic=True
            ),
        }
        opt_state = {
            "generator": g_opt.init(params["generator"]),
            "critic": c_opt.init(params["critic"]),
        }
        zero = jnp.zeros((), jnp.int32)
        return TrainState(params, opt_state, zero, zero)

    def generate(g_params, key, cond, hard):
        k_z, k_act = jax.random.split(key)
        z = jax.random.normal(k_z, (cond.shape[0], e))
        logits = generator.apply(g_params, jnp.concatenate([z, cond], axis=1))
        rows = heads.activate(logits, layout, k_act, tau=config.tau, hard=hard)
        return rows, logits

    def score(c_params, rows, cond, key):
        inputs = jnp.concatenate([rows, cond], axis=1)
        return critic.apply(
            c_params, inputs, deterministic=False, rngs={"dropout": key}
        )

    def gradient_penalty(c_params, real, fake, key):
        k_mix, k_drop = jax.random.split(key)
        groups = real.shape[0] // config.pac
        alpha = jax.random.uniform(k_mix, (groups, 1, 1))
        shape = (groups, config.pac, real.shape[1])
        mixed = alpha * real.reshape(shape) + (1 - alpha) * fake.reshape(shape)
        mixed = mixed.reshape(real.shape)

        def total_score(x):
            return jnp.sum(
                critic.apply(c_params, x, deterministic=False, rngs={"dropout": k_drop})
            )

        grad = jax.grad(total_score)(mixed).reshape(groups, -1)
        norm = jnp.sqrt(jnp.sum(grad**2, axis=1) + 1e-12)
        return config.gradient_penalty * jnp.mean((norm - 1.0) ** 2)

    def critic_loss(c_params, g_params, real, cond_real, cond_fake, key):
        k_gen, k_fake, k_real, k_gp = jax.random.split(key, 4)
        fake, _ = generate(g_params, k_gen, cond_fake, False)
        fake = jax.lax.stop_gradient(fake)
        wasserstein = jnp.mean(score(c_params, fake, cond_fake, k_fake)) - jnp.mean(
            score(c_params, real, cond_real, k_real)
        )
        real_in = jnp.concatenate([real, cond_real], axis=1)
        fake_in = jnp.concatenate([fake, cond_fake], axis=1)
        penalty = gradient_penalty(c_params, real_in, fake_in, k_gp)
        return wasserstein + penalty, (wasserstein, penalty)

    def generator_loss(g_params, c_params, cond, key, penalty_args):
        k_gen, k_drop = jax.random.split(key)
        fake, logits = generate(g_params, k_gen, cond, False)
        adversarial = -jnp.mean(score(c_params, fake, cond, k_drop))
        cond_loss = heads.condition_loss(logits, cond, spec) if c else 0.0 * adversarial
        penalty, aux = penalty_fn(fake, penalty_args)
        loss = adversarial + cond_loss + penalty
        return loss, (adversarial, cond_loss, penalty, aux)

    def epoch(state: TrainState, data: Array, key: Array, penalty_args=None):
        n, b = data.shape[0], config.batch_size
        k_batches, k_steps = jax.random.split(key)
        batches = heads.minibatch_indices(k_batches, n, b, config.min_steps)
        index = heads.index_rows(data, spec) if c else None

        def real_batch(key, rows):
            if not c:
                return shard(data[shard(rows)]), jnp.zeros((b, 0))
            cond, picked = heads.sample_training_conditions(key, index, spec, b)
            return shard(data[shard(picked)]), shard(cond)

        def fake_conditions(key):
            if not c:
                return jnp.zeros((b, 0))
            return shard(heads.sample_training_conditions(key, index, spec, b)[0])

        def step(carry, inputs):
            params, opt_state = carry
            rows, key = inputs
            keys = jax.random.split(key, 2 * config.discriminator_steps + 2)
            for i in range(config.discriminator_steps):
                k_real, k_loss = jax.random.split(keys[2 * i])
                if i and not c:
                    rows = jax.random.randint(keys[2 * i + 1], (b,), 0, n)
                real, cond_real = real_batch(k_real, rows)
                cond_fake = fake_conditions(keys[2 * i + 1])
                grads, (wasserstein, gp) = jax.grad(critic_loss, has_aux=True)(
                    params["critic"],
                    params["generator"],
                    real,
                    cond_real,
                    cond_fake,
                    k_loss,
                )
                updates, c_state = c_opt.update(
                    grads, opt_state["critic"], params["critic"]
                )
                params = {
                    **params,
                    "critic": optax.apply_updates(params["critic"], updates),
                }
                opt_state = {**opt_state, "critic": c_state}

            cond = fake_conditions(keys[-2])
            grads, (adversarial, cond_loss, penalty, aux) = jax.grad(
                generator_loss, has_aux=True
            )(params["generator"], params["critic"], cond, keys[-1], penalty_args)
            updates, g_state = g_opt.update(
                grads, opt_state["generator"], params["generator"]
            )
            params = {
                **params,
                "generator": optax.apply_updates(params["generator"], updates),
            }
            opt_state = {**opt_state, "generator": g_state}
            metrics = {
                "loss_critic": wasserstein + gp,
                "wasserstein": -wasserstein,
                "gradient_penalty": gp,
                "loss_generator": adversarial,
                "loss_condition": cond_loss,
                "penalty": penalty,
                "penalty_aux": aux,
            }
            return (params, opt_state), metrics

        keys = jax.random.split(k_steps, batches.shape[0])
        (params, opt_state), metrics = jax.lax.scan(
            step, (state.params, state.opt_state), (batches, keys)
        )
        new_state = TrainState(
            params, opt_state, state.step + batches.shape[0], state.epoch + 1
        )
        return new_state, epoch_mean(metrics)

    def sample(params, key, n: int, cond=None, *, hard: bool = False) -> Array:
        k_cond, k_gen = jax.random.split(key)
        cond = heads.requested_conditions(
            cond,
            n,
            c,
            lambda: heads.sample_conditions(
                k_cond, spec, frequencies, n, target_column
            ),
        )
        rows, _ = generate(params["generator"], k_gen, cond, hard)
        return heads.force_condition(rows, cond, spec) if c else rows

    def sample_compact(params, key, n: int, cond=None) -> tuple[Array, Array]:
        k_cond, k_z, k_pick = jax.random.split(key, 3)
        cond = heads.requested_conditions(
            cond,
            n,
            c,
            lambda: heads.draw_conditions(k_cond, spec, table, n, target_column),
        )
        z = counter_rng.normal(k_z, (n, e))
        inputs = jnp.concatenate([z, cond], axis=1)
        logits = generator.apply(params["generator"], inputs)
        picks = counter_rng.uniform(k_pick, (n, len(layout.softmax_blocks)))
        values, codes = heads.hard_compact(logits, layout, picks)
        codes = heads.force_codes(codes, cond, spec, layout) if c else codes
        return values, codes

    return Backbone(
        "gan", layout, config, c, init, epoch, sample, sample_compact=sample_compact
    )
