"""The exact privacy audit: the blocked search against scikit-learn, and the audit's
verdicts on a generator that copies its training rows and on a fresh sample."""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.neighbors import NearestNeighbors

import psygentab_jax as pj
from psygentab_jax import audit
from psygentab_jax._src import neighbors as neighbors_lib
from tests.conftest import shared_table


def mixed_rows(rng, n, numeric=5, levels=(3, 7, 2)):
    """Rows shaped like the metric space: standardized numerics + one-hot blocks."""
    parts = [rng.normal(size=(n, numeric))]
    for width in levels:
        parts.append(np.eye(width)[rng.integers(0, width, n)] / np.sqrt(2.0))
    return np.concatenate(parts, axis=1).astype(np.float32)


# Rows drawn from each table: three equal parts of 306 and 1,000 rows.
ROWS = {"heart_disease_uci": 920, "support2": 3000}


@functools.cache
def metric_split(name: str, seed: int = 0):
    """A real table in the metric space, split into train / holdout / fresh.

    ``fresh`` is a third sample of the same patients' population, disjoint from
    both: what a generator that leaks nothing would emit.
    """
    df = shared_table(name)
    df = df.sample(n=min(ROWS[name], len(df)), random_state=seed)
    df = df.reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = pj.TableEncoder(pj.infer_schema(df)).fit(df)
        metric = encoder.to_metric(df)
    order = np.random.default_rng(seed).permutation(len(metric))
    third = len(metric) // 3
    parts = np.split(metric[order], [third, 2 * third])
    return (*parts, encoder.metric_space)


# Blocks that divide nothing, one bigger than everything, and the defaults.
CASES = [(64, 100, 2), (96, 1000, 1), (512, 2048, 2)]


@pytest.mark.parametrize(("query_block", "reference_block", "k"), CASES)
def test_block_knn_matches_sklearn(query_block, reference_block, k):
    rng = np.random.default_rng(k)
    queries, reference = mixed_rows(rng, 517), mixed_rows(rng, 389)
    queries[:40] = reference[:40]  # exact duplicates: distance 0
    search = jax.jit(
        functools.partial(
            audit.block_knn,
            k=k,
            query_block=query_block,
            reference_block=reference_block,
        )
    )

    found = search(queries, reference)
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(reference)
    expected, _ = nn.kneighbors(queries)

    np.testing.assert_allclose(found.distance, expected, rtol=1e-5, atol=1e-5)
    assert np.all(found.distance[:40, 0] == 0.0)
    # Indices may differ on ties; the distance to the row named must match.
    direct = np.linalg.norm(queries[:, None, :] - reference[found.index], axis=-1)
    np.testing.assert_allclose(direct, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["heart_disease_uci", "support2"])
def test_nearest_neighbors_matches_sklearn_on_real_tables(name):
    train, holdout, _, _ = metric_split(name)
    found = audit.nearest_neighbors(holdout, train, k=2, reference_block=128)

    nn = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(train)
    expected, _ = nn.kneighbors(holdout)

    np.testing.assert_allclose(found.distance, expected, rtol=1e-5, atol=1e-5)


def test_nearest_neighbors_compiles_once_per_bucket():
    rng = np.random.default_rng(0)
    reference = mixed_rows(rng, 300)
    audit.nearest_neighbors(mixed_rows(rng, 100), reference, k=2)
    search = neighbors_lib._compiled_knn(2, 1, 128, 512, 8)
    before = search._cache_size()
    # Other row counts in the same buckets reuse the compiled search.
    audit.nearest_neighbors(mixed_rows(rng, 97), mixed_rows(rng, 290), k=2)
    audit.nearest_neighbors(mixed_rows(rng, 128), reference, k=2)
    assert search._cache_size() == before == 1


def test_kde_log_density_matches_direct_sum():
    rng = np.random.default_rng(1)
    points, samples = mixed_rows(rng, 70), mixed_rows(rng, 333)
    bandwidth = 0.6
    density = jax.jit(
        functools.partial(audit.kde_log_density, query_block=32, reference_block=100)
    )

    found = density(points, samples, bandwidth)
    sq = np.sum((points[:, None, :] - samples[None]) ** 2, axis=-1, dtype=np.float64)
    d = points.shape[1]
    expected = (
        logsumexp(-sq / (2 * bandwidth**2), axis=1)
        - np.log(len(samples))
        - 0.5 * d * np.log(2 * np.pi * bandwidth**2)
    )

    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-4)
    driver = neighbors_lib.kde_log_density_np(points, samples, bandwidth)
    np.testing.assert_allclose(driver, expected, rtol=1e-5, atol=1e-4)


def test_simple_rates_on_hand_made_rows():
    reference = np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 0.0]], np.float32)
    synthetic = np.array(
        [[0.0, 0.0], [0.05, 0.0], [1.0, 0.0], [3.0, 0.0], [1.0, 0.0]], np.float32
    )

    np.testing.assert_allclose(audit.dcr(synthetic, reference), [0, 0.05, 1, 0, 1])
    assert audit.exact_match_rate(synthetic, reference) == pytest.approx(2 / 5)
    assert audit.near_duplicate_rate(synthetic, reference) == pytest.approx(3 / 5)
    # nndr: 0/3, 0.05/2.95, 1/2, 0/0 := 0, 1/2.
    np.testing.assert_allclose(
        audit.nndr(synthetic, reference), [0, 0.05 / 2.95, 0.5, 0, 0.5], rtol=1e-6
    )
    # Two of five rows repeat an earlier one.
    assert audit.duplicate_rate(synthetic) == pytest.approx(1 / 5)
    assert audit.duplicate_rate(reference) == pytest.approx(1 / 3)


def test_dcr_share_counts_ties_half():
    train = np.array([[0.0], [10.0]], np.float32)
    holdout = np.array([[2.0], [10.0]], np.float32)
    synthetic = np.array([[0.5], [1.0], [1.9], [10.0]], np.float32)
    # 0.5 -> train; 1.0 -> tie; 1.9 -> holdout; 10 -> tie.
    assert audit.dcr_share(synthetic, train, holdout) == pytest.approx(0.5)


def test_composite_score_by_hand():
    distances = np.linspace(0.0, 1.0, 101)  # mean 0.5, p95 0.95
    gaps = np.array([0.1, 0.2, 0.6])  # mean 0.3, median 0.2
    score = audit.composite_score(distances, gaps, duplicate=0.02, exact=0.04)

    assert score.dcr_score == pytest.approx(0.5 / 0.95)
    assert score.quantile_score == pytest.approx(1 - 0.3 / 0.8)
    assert score.identity_score == pytest.approx(1 - 0.03 / 0.1)
    expected = (
        0.5 * score.dcr_score + 0.3 * score.quantile_score + 0.2 * score.identity_score
    )
    assert score.score == pytest.approx(expected)
    # Guards: all-zero DCRs and all-zero gaps.
    copies = audit.composite_score(np.zeros(10), np.zeros(3), 0.0, 1.0)
    assert (copies.dcr_score, copies.quantile_score, copies.identity_score) == (
        0.0,
        1.0,
        0.0,
    )


def test_quantile_gaps_skip_missing_values():
    columns = (
        pj.MetricColumn("a", "numeric", 0, 1),
        pj.MetricColumn("a", "missing", 1, 1),
        pj.MetricColumn("b", "categorical", 2, 2),
    )
    rng = np.random.default_rng(0)
    real = np.zeros((400, 4), np.float32)
    real[:, 0] = rng.normal(size=400)
    synthetic = real.copy()
    synthetic[:100, 0], synthetic[:100, 1] = 0.0, 1.0  # missing, not a value 0
    synthetic[100:, 0] += 0.5

    gaps = audit.quantile_gaps(synthetic, real, columns)
    levels = np.linspace(0.05, 0.95, 19)
    expected = np.mean(
        np.abs(
            np.quantile(synthetic[100:, 0], levels) - np.quantile(real[:, 0], levels)
        )
    )
    np.testing.assert_allclose(gaps, [expected], rtol=1e-6)


def test_copies_are_caught_on_heart_disease():
    train, holdout, _, space = metric_split("heart_disease_uci")
    report = audit.audit_privacy(
        train, train, holdout, space.columns, seed=0, sensitive="sex"
    )

    assert report.dcr_share == pytest.approx(1.0)
    assert report.exact_match_rate == pytest.approx(1.0)
    assert report.exact_match_rate_holdout < 0.02
    assert report.dcr_median == 0.0 < report.dcr_median_holdout
    assert report.nndr_median == 0.0 < report.nndr_median_holdout
    assert report.mia_distance_auc > 0.99
    assert report.mia_distance_tpr_at_1pct_fpr > 0.9
    assert report.mia_density_auc > 0.85
    assert report.attribute_score == pytest.approx(1.0)
    assert report.attribute_score > report.attribute_score_holdout
    assert report.privacy_score < 0.5 < report.privacy_score_holdout
    assert set(report.to_dict()) >= {"dcr_share", "dcr_share_holdout"}


def test_fresh_sample_looks_like_the_holdout_on_support2():
    # 1,000 rows per part (500 members, 500 non-members): the share and the AUCs
    # of a fresh sample have standard errors of about 0.016 and 0.018, so 0.06
    # is more than three of them.
    train, holdout, fresh, space = metric_split("support2")
    report = audit.audit_privacy(
        fresh, train, holdout, space.columns, seed=0, sensitive="fac_dzclass"
    )

    assert abs(report.dcr_share - 0.5) < 0.06
    assert abs(report.dcr_share_holdout - 0.5) < 0.06
    assert abs(report.mia_distance_auc - 0.5) < 0.06
    assert abs(report.mia_distance_auc_holdout - 0.5) < 0.06
    assert abs(report.mia_density_auc - 0.5) < 0.06
    assert report.exact_match_rate == report.exact_match_rate_holdout == 0.0
    assert 0.8 < report.dcr_median_ratio < 1.25
    assert abs(report.nndr_median - report.nndr_median_holdout) < 0.05
    assert abs(report.attribute_score - report.attribute_score_holdout) < 0.06


def test_block_knn_traced_reference_count_ignores_padding():
    rng = np.random.default_rng(3)
    queries, reference = mixed_rows(rng, 50), mixed_rows(rng, 64)
    search = jax.jit(
        functools.partial(audit.block_knn, k=2, query_block=16, reference_block=32)
    )
    found = search(queries, reference, n_reference=jnp.int32(40))
    expected, _ = (
        NearestNeighbors(n_neighbors=2, algorithm="brute")
        .fit(reference[:40])
        .kneighbors(queries)
    )
    np.testing.assert_allclose(found.distance, expected, rtol=1e-5, atol=1e-5)
    assert int(found.index.max()) < 40


@pytest.mark.parametrize("k", [1, 3])
def test_block_knn_neighbours_in_one_block(k):
    # A query's k nearest rows sit in k different groups of one reference block:
    # the first pass must keep k groups of that block, and the exact pass must
    # find every one of them.
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(1000, 4)).astype(np.float32)
    close = [490, 498, 506]  # groups 61, 62, 63 of block 3 (rows 384-511)
    reference[close] = reference[498] + 1e-3 * rng.normal(size=(3, 4))
    queries = np.concatenate([reference[close] + 1e-4, rng.normal(size=(60, 4))])
    queries = queries.astype(np.float32)
    found = jax.jit(
        functools.partial(
            audit.block_knn, k=k, query_block=16, reference_block=128, group=8
        )
    )(queries, reference)
    expected, _ = (
        NearestNeighbors(n_neighbors=k, algorithm="brute")
        .fit(reference)
        .kneighbors(queries)
    )
    np.testing.assert_allclose(found.distance, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(found.distance, axis=1) >= 0)
    assert all(len(set(row)) == k for row in np.asarray(found.index).tolist())
    assert set(np.asarray(found.index)[0].tolist()) == set(close[:k])


@pytest.mark.parametrize("n_train", [400, 200, 100])
def test_audit_reuses_searches_without_changing_a_figure(n_train):
    # audit_privacy skips two searches whose answers it already has (the DCR
    # share's synthetic -> train pass and the distance attack null's non-members
    # -> reference pass); its figures must equal the standalone functions' on the
    # same subsamples. With 400 training rows nothing is subsampled to size; with
    # 200 the holdout is, so one reuse changes side; with 100 the null's 150
    # reference rows are subsampled too, so that search cannot be reused.
    rng = np.random.default_rng(11)
    synthetic, train = mixed_rows(rng, 300), mixed_rows(rng, n_train)
    holdout = mixed_rows(rng, 300)
    report = audit.audit_privacy(synthetic, train, holdout, seed=4)

    assert report.dcr_share == audit.dcr_share(synthetic, train, holdout, seed=4)
    order = np.random.default_rng(4)
    shuffled = holdout[order.permutation(len(holdout))]
    reference, non_members = shuffled[:150], shuffled[150:]
    assert report.dcr_share_holdout == audit.dcr_share(
        non_members, train, reference, seed=5
    )
    members = train[order.choice(n_train, min(n_train, 150), False)]
    null = audit.distance_attack(reference, members, non_members[: len(members)])
    assert report.mia_distance_auc_holdout == null.auc
    assert report.mia_distance_tpr_at_1pct_fpr_holdout == null.tpr_at_1pct_fpr
