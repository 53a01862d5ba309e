"""Peer synthesizers (SDV), used only when the optional ``bench`` extra is installed.

Peers are fitted on exactly the training split a :class:`Synthesizer` used, so their
rows go through the same exact audit and the same evaluation.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd

SDV_SYNTHESIZERS = ("GaussianCopulaSynthesizer", "CTGANSynthesizer", "TVAESynthesizer")


def sdv_available() -> bool:
    """Whether SDV can be imported."""
    return importlib.util.find_spec("sdv") is not None


def sdv_sample(
    name: str,
    train: pd.DataFrame,
    n: int,
    *,
    identifiers: list[str],
    epochs: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Fit one SDV single-table synthesizer on ``train`` and draw ``n`` rows.

    Identifier columns are left out of SDV's fit and written back as fresh keys
    ``1..n`` (as ours are), so no synthesizer learns or leaks them.
    """
    import torch
    from sdv import single_table
    from sdv.metadata import Metadata

    np.random.seed(seed)
    torch.manual_seed(seed)
    learned = train.drop(columns=identifiers)
    metadata = Metadata.detect_from_dataframe(learned)
    options = {}
    if epochs is not None and name != "GaussianCopulaSynthesizer":
        options["epochs"] = epochs
    model = getattr(single_table, name)(metadata, **options)
    model.fit(learned)
    rows = model.sample(num_rows=n)
    for column in identifiers:
        rows[column] = np.arange(1, n + 1).astype(train[column].dtype)
    return rows[list(train.columns)]
