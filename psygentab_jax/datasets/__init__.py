"""Clinical tables: one embedded default, the rest loaded from a folder.

``load("heart_disease_uci")`` needs nothing but the package: the table ships inside
it (UCI Heart Disease; Janosi, Steinbrunn, Pfisterer & Detrano, 1988; CC BY 4.0; see
``data/CITATION.md``). The other tables of the benchmark collection load from a
folder, ``load(name, path=...)``, or from ``$PSYGENTAB_DATA``.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from psygentab_jax._src.io import read_table
from psygentab_jax._src.schema import SchemaError


class DatasetInfo(NamedTuple):
    """A table's file, outcome, identifier and citation."""

    file: str
    target: str
    identifier: str | None
    citation: str


DATASETS: dict[str, DatasetInfo] = {
    "heart_disease_uci": DatasetInfo(
        "heart_disease_uci.csv",
        "disease",
        None,
        "UCI Heart Disease (Janosi, Steinbrunn, Pfisterer, Detrano, 1988), CC BY 4.0",
    ),
    "covid_testing": DatasetInfo(
        "covid_testing.csv",
        "result",
        "subject_id",
        "CHOP COVID-19 testing 2020, R package medicaldata (MIT)",
    ),
    "thyroid": DatasetInfo(
        "thyroid.csv",
        "target",
        "patient_id",
        "UCI Thyroid (Garavan Institute), CC BY 4.0",
    ),
    "support2": DatasetInfo(
        "support2.csv",
        "event",
        "pid",
        "SUPPORT2 study, Vanderbilt Biostatistics (public)",
    ),
    "aids_actg320": DatasetInfo(
        "aids_actg320.csv",
        "aids_or_death",
        None,
        "ACTG 320 trial (Hosmer, Lemeshow & May), via scikit-survival",
    ),
    "wdbc": DatasetInfo(
        "wdbc.csv",
        "target",
        None,
        "Breast Cancer Wisconsin (Diagnostic), UCI, CC BY 4.0",
    ),
    "pima": DatasetInfo(
        "pima.csv",
        "type",
        None,
        "Pima Indians Diabetes (Smith et al., 1988), R package MASS",
    ),
}
EMBEDDED = "heart_disease_uci"


def names() -> list[str]:
    """Names of the known tables."""
    return list(DATASETS)


def info(name: str) -> DatasetInfo:
    """The file, outcome, identifier and citation of a known table."""
    if name not in DATASETS:
        raise SchemaError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def load(name: str = EMBEDDED, path: str | Path | None = None) -> pd.DataFrame:
    """Load a known table.

    Args:
      name: one of :func:`names`.
      path: the folder holding the CSV files; defaults to ``$PSYGENTAB_DATA``. Not
        needed for the embedded ``heart_disease_uci``.

    Raises:
      SchemaError: unknown name, or a non-embedded table without a folder.
    """
    entry = info(name)
    if path is None and name == EMBEDDED:
        resource = resources.files(__package__).joinpath("data", entry.file)
        with resources.as_file(resource) as file:
            return read_table(file)
    folder = path if path is not None else os.environ.get("PSYGENTAB_DATA")
    if folder is None:
        raise SchemaError(
            f"dataset {name!r} is not embedded: pass path=FOLDER or set PSYGENTAB_DATA"
        )
    return read_table(Path(folder) / entry.file)
