"""Bad inputs get a clear error and write nothing; outputs are atomic; the CLI."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

import psygentab_jax as pg
from psygentab_jax import cli, datasets
from psygentab_jax._src import io


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


BAD_FILES = {
    "empty.csv": (b"", "is empty"),
    "header_only.csv": (b"a,b,c\n", "no rows"),
    "garbage.parquet": (b"\x00\x01not parquet at all", "cannot be read"),
    "ragged.csv": (b"a,b\n1,2\n3,4,5,6\n", "cannot be read"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_give_clear_errors_and_stay_untouched(tmp_path, name):
    content, message = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    before = digest(path)
    with pytest.raises(pg.SchemaError, match=message) as caught:
        io.read_table(path)
    assert name in str(caught.value)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(pg.SchemaError, match="no such file"):
        io.read_table(tmp_path / "absent.csv")
    (tmp_path / "table.txt").write_text("a\n1\n")
    with pytest.raises(pg.SchemaError, match=".csv or .parquet"):
        io.read_table(tmp_path / "table.txt")


BAD_FRAMES = {
    "no rows": (pd.DataFrame({"a": []}), "no rows"),
    "duplicate names": (
        pd.DataFrame([[1, 2], [3, 4]], columns=["a", "a"]),
        r"duplicate column names: \['a'\]",
    ),
    "entirely missing": (
        pd.DataFrame({"a": [1.0, 2.0], "lab": [np.nan, np.nan]}),
        "'lab' is entirely missing",
    ),
    "infinite": (
        pd.DataFrame({"a": [1.0, np.inf, 3.0]}),
        "'a' has infinite values",
    ),
    "mixed object": (
        pd.DataFrame({"a": pd.Series([1, "two", 3.0], dtype=object)}),
        "'a' mixes numbers and strings",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_frames_give_clear_errors(case):
    df, message = BAD_FRAMES[case]
    with pytest.raises(ValueError, match=message):
        pg.infer_schema(df)


def test_unknown_target():
    df = pd.DataFrame({"a": [1, 2, 3]})
    with pytest.raises(pg.SchemaError, match="target column 'outcome' does not exist"):
        pg.infer_schema(df, target="outcome")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    out = tmp_path / "synthetic.csv"
    io.write_table(pd.DataFrame({"a": [1, 2]}), out)
    before = digest(out)

    def explode(path):
        path.write_text("half a fi")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        io.write_atomic(out, explode)
    assert digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic.csv"]


def test_csv_and_parquet_round_trip(tmp_path):
    df = datasets.load()
    for suffix in (".csv", ".parquet"):
        path = io.write_table(df, tmp_path / f"t{suffix}")
        back = io.read_table(path)
        # Parquet writes a missing object value as None, CSV as NaN: compare both
        # through one missing marker.
        pd.testing.assert_frame_equal(
            back.astype(object).where(back.notna(), "NA").astype(str),
            df.astype(object).where(df.notna(), "NA").astype(str),
        )


def test_embedded_dataset_and_loaders(monkeypatch):
    df = datasets.load("heart_disease_uci")
    assert df.shape == (920, 15)
    assert "disease" in df.columns
    assert set(datasets.names()) >= {"covid_testing", "support2", "thyroid"}
    monkeypatch.delenv("PSYGENTAB_DATA", raising=False)
    with pytest.raises(pg.SchemaError, match="not embedded"):
        datasets.load("covid_testing")
    with pytest.raises(pg.SchemaError, match="unknown dataset"):
        datasets.load("nope")


def test_cli_schema_prints_json(tmp_path, capsys):
    path = tmp_path / "t.csv"
    datasets.load().to_csv(path, index=False)
    assert cli.main(["schema", str(path), "--target", "disease"]) == 0
    schema = pg.Schema.from_json(capsys.readouterr().out)
    assert schema.target == "disease"
    assert len(schema.columns) == 15


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert cli.main(["schema", str(path)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "empty.csv" in err and "Traceback" not in err
