"""Streaming generation: chunk-invariant rows, files complete or absent, the CLI."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from psygentab_jax import cli
from psygentab_jax._src.layout import Block, Layout
from psygentab_jax._src.models.gan import make_gan
from psygentab_jax._src.models.heads import condition_vector, hard_compact
from psygentab_jax._src.models.vae import make_vae
from psygentab_jax._src.schema import SchemaError
from psygentab_jax._src.synthesizer import Synthesizer, _row_hashes

COLUMNS = ["site", "grade", "dose", "outcome"]


@pytest.fixture(scope="module")
def synth():
    """A small VAE under ``exact_match == 0`` on a table of few distinct rows.

    With so few distinct rows the generator emits training rows often, so the
    per-chunk filter drops rows in every chunk.
    """
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "site": rng.choice(["a", "b", "c"], 400),
            "grade": rng.integers(0, 12, 400),
            "dose": np.round(rng.gamma(2.0, 1.5, 400), 1),
            "outcome": rng.choice([0, 1], 400, p=[0.7, 0.3]),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Synthesizer(backbone="vae", epochs=2, seed=0)
        return model.fit(df, target="outcome", constraints=["exact_match == 0"])


def _training_hashes(model):
    return _row_hashes(model._frames["train"], COLUMNS)


def test_chunks_give_the_same_rows_whatever_their_size(synth):
    whole = synth.sample(5000, seed=3)
    assert len(whole) == 5000 and list(whole.columns) == COLUMNS
    for chunk_rows in (1024, 3000):
        frames = list(synth.iter_samples(5000, seed=3, chunk_rows=chunk_rows))
        sizes = [len(f) for f in frames]
        assert sum(sizes) == 5000 and max(sizes) <= -(-chunk_rows // 1024) * 1024
        assert len(frames) > 1
        pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), whole)
    assert not whole.equals(synth.sample(5000, seed=4))


def test_every_chunk_is_filtered_for_training_rows(synth):
    rows = pd.concat(list(synth.iter_samples(4000, chunk_rows=1024)))
    assert len(rows) == 4000
    hashes = _row_hashes(rows, COLUMNS)
    assert not np.isin(hashes, _training_hashes(synth)).any()
    # The filter had work to do: without it, training rows come out.
    unfiltered = _row_hashes(_unfiltered(synth).sample(4000), COLUMNS)
    assert np.isin(unfiltered, _training_hashes(synth)).any()


@pytest.mark.parametrize("kind", ["vae", "gan"])
@pytest.mark.parametrize("conditioned", [False, True])
def test_compact_draws_follow_the_hard_samples_distribution(synth, kind, conditioned):
    """``sample_compact`` (inverse CDF) against ``sample(hard=True)`` (Gumbel arg max).

    Any parameters will do: freshly initialized ones give non-trivial logits.
    """
    layout = synth.encoder.layout
    make = make_vae if kind == "vae" else make_gan
    backbone = make(layout, synth._stats, target="outcome")
    params = backbone.init(jax.random.key(0)).params
    cond = condition_vector(layout, "site", 1) if conditioned else None
    n = 20_000
    dense = jax.jit(backbone.sample, static_argnames=("n", "hard"))(
        params, jax.random.key(1), n=n, cond=cond, hard=True
    )
    values, codes = jax.jit(backbone.sample_compact, static_argnames="n")(
        params, jax.random.key(2), n=n, cond=cond
    )
    assert values.shape == (n, len(layout.scalar_blocks))
    assert codes.shape == (n, len(layout.softmax_blocks)) and codes.dtype == np.int32
    dense = np.asarray(dense)
    for index, block in enumerate(layout.softmax_blocks):
        expected = np.bincount(
            np.argmax(dense[:, block.slice], axis=1), minlength=block.width
        )
        found = np.bincount(np.asarray(codes[:, index]), minlength=block.width)
        assert found.size == block.width  # no code outside the block
        # Two independent samples of 20,000: shares agree within ~4 standard errors.
        np.testing.assert_allclose(found / n, expected / n, atol=0.02)
    if conditioned:
        site = [b.column for b in layout.softmax_blocks].index("site")
        assert np.all(np.asarray(codes[:, site]) == 1)
    for index, block in enumerate(layout.scalar_blocks):
        column = np.asarray(values[:, index])
        assert np.all(np.abs(column) <= 1.0)
        assert abs(column.mean() - dense[:, block.start].mean()) < 0.03
        assert abs(column.std() - dense[:, block.start].std()) < 0.03


@pytest.mark.parametrize("widths", [(2, 5, 14), (40, 3), (1, 33)])
def test_hard_compact_inverts_each_blocks_softmax_at_its_uniform(widths):
    """Codes are the inverse CDF of each block's softmax, for narrow blocks (summed
    column by column) and wide ones (``cumsum``), checked against float64 NumPy."""
    blocks, start = [Block("x", "scalar", "value", 0, 1)], 1
    for i, width in enumerate(widths):
        blocks.append(Block(f"c{i}", "softmax", "category", start, width))
        start += width
    layout = Layout(tuple(blocks))
    n = 4000
    logits = 3.0 * jax.random.normal(jax.random.key(0), (n, layout.width))
    uniforms = jax.random.uniform(jax.random.key(1), (n, len(widths)))
    values, codes = jax.jit(hard_compact, static_argnums=1)(logits, layout, uniforms)
    np.testing.assert_allclose(values[:, 0], np.tanh(logits[:, 0]), rtol=1e-6)
    logits, uniforms, codes = (
        np.asarray(a, np.float64) for a in (logits, uniforms, codes)
    )
    for index, block in enumerate(layout.softmax_blocks):
        weight = np.exp(
            logits[:, block.slice] - logits[:, block.slice].max(1, keepdims=True)
        )
        running = np.cumsum(weight, axis=1)
        target = uniforms[:, index : index + 1] * running[:, -1:]
        expected = np.sum(running[:, :-1] <= target, axis=1)
        # float32 sums may fall on the other side of a boundary within rounding
        near = np.any(np.abs(running[:, :-1] - target) < 1e-5 * running[:, -1:], axis=1)
        assert near.mean() < 0.01
        np.testing.assert_array_equal(codes[~near, index], expected[~near])
        assert codes[:, index].min() >= 0 and codes[:, index].max() <= block.width - 1


def test_parquet_file_has_every_row_in_fixed_row_groups(synth, tmp_path):
    path = tmp_path / "rows.parquet"
    seen = []
    written = synth.sample_to_file(
        path,
        5000,
        seed=3,
        chunk_rows=1024,
        row_group_rows=2048,
        progress=seen.append,
    )
    assert written == 5000 and seen[-1] == 5000 and seen == sorted(seen)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == 5000
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [
        2048,
        2048,
        904,
    ]
    pd.testing.assert_frame_equal(pd.read_parquet(path), synth.sample(5000, seed=3))
    # Row groups do not follow the chunks: other chunks, same bytes.
    other = tmp_path / "other.parquet"
    synth.sample_to_file(other, 5000, seed=3, chunk_rows=4096, row_group_rows=2048)
    assert other.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other.parquet",
        "rows.parquet",
    ]


def test_csv_file_is_appended_chunk_by_chunk(synth, tmp_path):
    path = tmp_path / "rows.csv"
    synth.sample_to_file(path, 2500, seed=5, chunk_rows=1024)
    expected = tmp_path / "expected.csv"
    synth.sample(2500, seed=5).to_csv(expected, index=False)
    assert path.read_bytes() == expected.read_bytes()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_failure_mid_stream_leaves_no_file(synth, tmp_path, error, suffix):
    path = tmp_path / f"rows{suffix}"

    def stop_after_two_chunks(rows):
        if rows > 2048:
            raise error("stopped")

    with pytest.raises(error, match="stopped"):
        synth.sample_to_file(
            path, 10_000, chunk_rows=1024, progress=stop_after_two_chunks
        )
    assert list(tmp_path.iterdir()) == []

    # An existing file is left as it was.
    path.write_text("old")
    with pytest.raises(error, match="stopped"):
        synth.sample_to_file(
            path, 10_000, chunk_rows=1024, progress=stop_after_two_chunks
        )
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_zero_rows_and_bad_arguments(synth, tmp_path):
    empty = synth.sample(0)
    assert len(empty) == 0 and list(empty.columns) == COLUMNS
    path = tmp_path / "none.parquet"
    assert synth.sample_to_file(path, 0) == 0
    assert pq.ParquetFile(path).metadata.num_rows == 0
    assert pq.read_schema(path).names == COLUMNS
    with pytest.raises(SchemaError, match="must end in .csv or .parquet"):
        synth.sample_to_file(tmp_path / "rows.json", 10)
    with pytest.raises(ValueError, match="chunk_rows"):
        synth.iter_samples(10, chunk_rows=0)
    with pytest.raises(ValueError, match="not a category"):
        synth.iter_samples(10, condition={"site": "z"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["none.parquet"]


def test_a_table_of_categories_only_streams(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {"site": rng.choice(["a", "b", "c"], 300), "flag": rng.choice(["y", "n"], 300)}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Synthesizer(backbone="vae", epochs=1, seed=0)
        model.fit(df, target="flag", constraints=[])
    assert not model.encoder.layout.scalar_blocks
    path = tmp_path / "rows.csv"
    assert model.sample_to_file(path, 2500, chunk_rows=1024) == 2500
    rows = pd.read_csv(path)
    assert list(rows.columns) == ["site", "flag"] and len(rows) == 2500
    assert set(rows["site"]) <= {"a", "b", "c"}


def test_conditional_stream(synth):
    rows = pd.concat(list(synth.iter_samples(3000, condition={"site": "b"})))
    assert len(rows) == 3000 and set(rows["site"]) == {"b"}


def test_cli_sample_writes_parquet(synth, tmp_path, capsys):
    model = synth.save(tmp_path / "model.psygentab")
    out = tmp_path / "rows.parquet"
    code = cli.main(
        ["sample", "--model", str(model), "-n", "3000", "--out", str(out)]
        + ["--chunk-rows", "1024", "--seed", "7"]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "rows/s" in err and "wrote 3000 rows" in err
    loaded = Synthesizer.load(model)
    pd.testing.assert_frame_equal(pd.read_parquet(out), loaded.sample(3000, seed=7))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.psygentab",
        "rows.parquet",
    ]


def _unfiltered(model):
    """``model`` without its constraints: no row is dropped, so blocks line up."""
    free = Synthesizer.__new__(Synthesizer)
    free.__dict__.update(model.__dict__)
    free.constraints = ()
    return free


def test_parts_take_every_pth_block_of_the_stream(synth):
    free = _unfiltered(synth)
    whole = free.sample(6 * 1024, seed=5)
    for index in range(3):
        part = pd.concat(
            list(free.iter_samples(6 * 1024, seed=5, chunk_rows=1024, part=(index, 3))),
            ignore_index=True,
        )
        blocks = [whole.iloc[b * 1024 : (b + 1) * 1024] for b in (index, index + 3)]
        pd.testing.assert_frame_equal(part, pd.concat(blocks, ignore_index=True))
    # Part 0 of 1 is the whole stream; uneven shares differ by one row at most.
    first = pd.concat(list(free.iter_samples(5000, seed=5, part=(0, 1))))
    pd.testing.assert_frame_equal(
        first.reset_index(drop=True), free.sample(5000, seed=5)
    )
    sizes = [
        sum(len(f) for f in free.iter_samples(5000, seed=5, part=(k, 3)))
        for k in range(3)
    ]
    assert sizes == [1667, 1667, 1666]


def test_filtered_parts_are_disjoint_and_fixed_by_their_seed(synth):
    parts = [
        pd.concat(list(synth.iter_samples(3000, seed=2, part=(k, 2)))) for k in (0, 1)
    ]
    assert [len(p) for p in parts] == [1500, 1500]
    training = _training_hashes(synth)
    for k, rows in enumerate(parts):
        assert not np.isin(_row_hashes(rows, COLUMNS), training).any()
        again = pd.concat(list(synth.iter_samples(3000, seed=2, part=(k, 2))))
        pd.testing.assert_frame_equal(rows, again)
    assert not parts[0].reset_index(drop=True).equals(parts[1].reset_index(drop=True))
    for bad in ((2, 2), (-1, 2), (0, 0), ("a", 2), (1,)):
        with pytest.raises(ValueError, match="part"):
            synth.iter_samples(10, part=bad)


def test_cli_sample_parts(synth, tmp_path, capsys):
    model = synth.save(tmp_path / "model.psygentab")
    out = tmp_path / "rows.parquet"
    for k in range(2):
        code = cli.main(
            ["sample", "--model", str(model), "-n", "3001", "--out", str(out)]
            + ["--seed", "7", "--part", f"{k}/2", "--quiet"]
        )
        assert code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["model.psygentab"] + [
        f"rows-0000{k}-of-00002.parquet" for k in range(2)
    ]
    loaded = Synthesizer.load(model)
    for k, rows in enumerate((1501, 1500)):
        found = pd.read_parquet(tmp_path / f"rows-0000{k}-of-00002.parquet")
        expected = pd.concat(list(loaded.iter_samples(3001, seed=7, part=(k, 2))))
        pd.testing.assert_frame_equal(found, expected.reset_index(drop=True))
        assert len(found) == rows
    # One part of one is the whole sample, in the file named.
    code = cli.main(
        ["sample", "--model", str(model), "-n", "3001", "--out", str(out)]
        + ["--seed", "7", "--part", "0/1", "--quiet"]
    )
    assert code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), loaded.sample(3001, seed=7))
    capsys.readouterr()
    for bad in ("2/2", "1", "a/b", "-1/2"):
        code = cli.main(
            ["sample", "--model", str(model), "-n", "10", "--out", str(out)]
            + ["--part", bad]
        )
        assert code == 2
        assert "--part" in capsys.readouterr().err
