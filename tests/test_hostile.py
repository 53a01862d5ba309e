"""Hostile and awkward inputs, through the Python API and the command line.

Every input of the corpus is generated here, into a temporary folder. Each one
gets, through both the API and ``psygentab``, either a clear one-line error
(non-zero exit, no traceback) or the handling the README documents; no input file
is ever modified and a failed command leaves nothing in its output folder. The
README's "Bad input" table lists the same corpus.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import msgpack
import numpy as np
import pandas as pd
import pytest

import psygentab_jax as pg
from psygentab_jax import cli, datasets
from psygentab_jax._src.io import read_table
from psygentab_jax._src.synthesizer import split_rows

ROOT = Path(__file__).resolve().parents[1]
ERROR_LINE = re.compile(r"^psygentab( \w+)?: error: ")


# ------------------------------------------------------------------ helpers
def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_cli_error(argv, message, capsys, *, inputs: Path, out: Path) -> str:
    """Run ``psygentab argv`` in-process; it must fail in one clean line."""
    before = digests(inputs)
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1, captured.err
    assert ERROR_LINE.match(lines[0]), lines[0]
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert digests(inputs) == before, "an input file was modified"
    assert sorted(out.iterdir()) == [], "a failed command left output behind"
    return lines[0]


def assert_api_error(run: Callable[[], object], message: str, error=ValueError):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=message):
            run()


@pytest.fixture
def folders(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    return inputs, out


def clean(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A small well-formed table the corpus spoils one way at a time."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(20, 90, n),
            "sex": rng.choice(["F", "M"], n),
            "chol": rng.normal(200, 30, n).round(1),
            "outcome": rng.choice(["no", "yes"], n),
        }
    )


def text_file(text: str, name: str = "t.csv", encoding: str = "utf-8"):
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(text.encode(encoding))
        return path

    return write


def frame_file(make: Callable[[], pd.DataFrame], name="t.csv", *, index=False):
    def write(folder: Path) -> Path:
        path = folder / name
        df = make()
        if path.suffix == ".parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=index)
        return path

    return write


def spoiled(**columns) -> Callable[[], pd.DataFrame]:
    """:func:`clean` with some columns replaced (a callable gets ``n``)."""

    def make() -> pd.DataFrame:
        df = clean()
        for name, value in columns.items():
            df[name] = value(len(df)) if callable(value) else value
        return df

    return make


def _stray_word(n):
    values = [f"{200 + 1.5 * i:.1f}" for i in range(n)]
    values[7] = "<5"
    return values


def _mixed_dates(n):
    return [
        f"2021-03-{i % 28 + 1:02d}" if i % 2 else f"{i % 28 + 1:02d}/03/2021"
        for i in range(n)
    ]


def _folder(folder: Path) -> Path:
    path = folder / "t.csv"
    path.mkdir()
    return path


def _wide(rows: int = 12, columns: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        rng.normal(size=(rows, columns)), columns=[f"x{i}" for i in range(columns)]
    )


# ------------------------------------------------- tables that must be refused
@dataclasses.dataclass(frozen=True)
class Bad:
    write: Callable[[Path], Path]
    message: str
    target: str | None = None


BAD_TABLES = {
    "empty file": Bad(text_file(""), "is empty"),
    "header only": Bad(text_file("age,sex\n"), "has a header but no rows"),
    "only a byte-order mark": Bad(text_file("\ufeff"), "is empty"),
    "semicolon-delimited": Bad(
        text_file(clean().to_csv(index=False, sep=";")), "looks ';'-separated"
    ),
    "tab-delimited": Bad(
        text_file(clean().to_csv(index=False, sep="\t")), "looks tab-separated"
    ),
    "ragged: a short row": Bad(
        text_file("a,b,c\n1,2,3\n4,5\n6,7,8\n"),
        r"line 3 has 2 fields, the header has 3",
    ),
    "ragged: every row a field too many": Bad(
        text_file("a,b\n1,2,3\n4,5,6\n"), r"line 2 has 3 fields, the header has 2"
    ),
    "duplicate column names": Bad(
        text_file("age,sex,sex\n" + "".join(f"{i},F,M\n" for i in range(30))),
        r"duplicate column names: \['sex'\]",
    ),
    "empty column name (a saved index)": Bad(
        frame_file(clean, index=True), r"columns without a name \(positions \[1\]\)"
    ),
    "blank column name": Bad(
        text_file("age, ,sex\n" + "".join(f"{i},1,F\n" for i in range(30))),
        r"columns without a name \(positions \[2\]\)",
    ),
    "not UTF-8 (Latin-1)": Bad(
        text_file("ward,n\ncafé,1\nthé,2\n", encoding="latin-1"),
        "is not UTF-8 text",
    ),
    "a column entirely missing": Bad(
        frame_file(spoiled(lab=np.nan)), "column 'lab' is entirely missing"
    ),
    "infinities": Bad(
        frame_file(spoiled(chol=lambda n: np.where(np.arange(n) == 5, np.inf, 1.0))),
        "column 'chol' has infinite values",
    ),
    "numbers as text with a stray word": Bad(
        frame_file(spoiled(chol=_stray_word)),
        r"column 'chol' holds numbers stored as text.*\['<5'\]",
    ),
    "dates in mixed formats": Bad(
        frame_file(spoiled(visit=_mixed_dates)), "column 'visit' mixes date formats"
    ),
    "dates day-or-month first": Bad(
        frame_file(
            spoiled(visit=lambda n: [f"{i % 12 + 1:02d}/03/2021" for i in range(n)])
        ),
        "column 'visit' holds dates as text in a non-ISO format",
    ),
    "target with one class": Bad(
        frame_file(spoiled(outcome="yes")),
        "target column 'outcome' has a single class",
        target="outcome",
    ),
    "single-row table": Bad(
        text_file("age,sex\n61,F\n"), "the table has 1 rows; at least 10 are needed"
    ),
    "more columns than rows": Bad(
        frame_file(_wide), "has 12 rows and 20 columns to learn"
    ),
    "Parquet with nested types": Bad(
        frame_file(
            spoiled(codes=lambda n: [[i, i + 1] for i in range(n)]), "t.parquet"
        ),
        r"nested columns 'codes' \(list<",
    ),
    "a folder named like a table": Bad(_folder, "is a folder"),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_table(case, folders, capsys):
    inputs, out = folders
    bad = BAD_TABLES[case]
    path = bad.write(inputs)
    target = ["--target", bad.target] if bad.target else []

    assert_api_error(
        lambda: pg.Synthesizer(epochs=1).fit(read_table(path), target=bad.target),
        bad.message,
        pg.SchemaError,
    )
    model = out / "model.psygentab"
    argv = ["fit", path, *target, "--epochs", "1", "--quiet", "--model", model]
    line = assert_cli_error(argv, bad.message, capsys, inputs=inputs, out=out)
    assert line.startswith("psygentab fit: error:")


# ------------------------------------- awkward tables with a documented handling
def _check_bom(df, schema, caught):
    assert list(df.columns) == ["age", "sex", "chol", "outcome"]
    assert schema.names[0] == "age"


def _check_non_ascii(df, schema, caught):
    assert schema.names == ["âge", "séxe", "診断", "outcome"]
    assert schema["séxe"].kind == "categorical"


def _check_constant(df, schema, caught):
    assert schema["site"].kind == "constant"
    assert schema["age"].kind != "constant"


def _check_many_levels(df, schema, caught):
    assert df["code"].nunique() == 10_000
    assert schema["code"].kind == "identifier"
    assert any("more than 1000 distinct values" in m for m in caught)
    assert any("'code'" in m for m in caught)


def _check_class_of_one(df, schema, caught):
    assert schema["outcome"].kind == "categorical"
    assert any("classes of a single row: ['rare']" in m for m in caught)
    split = split_rows(
        df, target="outcome", group=None, holdout=0.2, reference=0.1, seed=0
    )
    parts = np.concatenate(split)
    assert sorted(parts) == list(range(len(df)))  # every row in exactly one part
    (rare,) = np.flatnonzero(df["outcome"].to_numpy() == "rare")
    assert sum(rare in part for part in split) == 1


def _many_levels() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    codes = np.repeat([f"drug-{i:05d}" for i in range(10_000)], 2)
    return pd.DataFrame({"code": codes, "dose": rng.integers(1, 5, codes.size)})


def _class_of_one() -> pd.DataFrame:
    df = clean()
    df.loc[3, "outcome"] = "rare"
    return df


AWKWARD_TABLES = {
    "byte-order mark": (
        text_file("\ufeff" + clean().to_csv(index=False)),
        None,
        _check_bom,
    ),
    "non-ASCII column names": (
        frame_file(
            lambda: clean().rename(
                columns={"age": "âge", "sex": "séxe", "chol": "診断"}
            )
        ),
        None,
        _check_non_ascii,
    ),
    "a column of one value": (
        frame_file(spoiled(site="Cleveland")),
        None,
        _check_constant,
    ),
    "a 10,000-level categorical": (frame_file(_many_levels), None, _check_many_levels),
    "a target class of one row": (
        frame_file(_class_of_one),
        "outcome",
        _check_class_of_one,
    ),
}


@pytest.mark.parametrize("case", sorted(AWKWARD_TABLES))
def test_awkward_table(case, folders, capsys):
    inputs, out = folders
    write, target, check = AWKWARD_TABLES[case]
    path = write(inputs)
    before = digests(inputs)

    df = read_table(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schema = pg.infer_schema(df, target=target)
    check(df, schema, [str(w.message) for w in caught])

    argv = ["schema", str(path)] + (["--target", target] if target else [])
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert pg.Schema.from_json(captured.out) == schema
    stderr = captured.err.strip().splitlines()
    assert all(line.startswith("warning: ") for line in stderr), stderr
    assert digests(inputs) == before
    assert sorted(out.iterdir()) == []


# ------------------------------------------------ schema files that disagree
def _schema_dict() -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pg.infer_schema(clean(), target="outcome").to_dict()


def _edited(edit: Callable[[dict], None]) -> str:
    data = _schema_dict()
    edit(data)
    return json.dumps(data)


def _set(name: str, **fields):
    def edit(data):
        for entry in data["columns"]:
            if entry["name"] == name:
                entry.update(fields)

    return edit


BAD_SCHEMAS = {
    "schema lacks a column of the table": (
        _edited(lambda d: d["columns"].pop(2)),
        r"columns the schema does not list: \['chol'\]",
    ),
    "schema lists a column the table lacks": (
        _edited(
            lambda d: d["columns"].append(
                {"name": "bmi", "kind": "continuous", "dtype": "float64"}
            )
        ),
        r"lacks schema columns \['bmi'\]",
    ),
    "kind impossible for the values": (
        _edited(_set("sex", kind="continuous")),
        "column 'sex' is continuous but holds non-numeric values",
    ),
    "unknown kind": (_edited(_set("sex", kind="text")), "unknown kind 'text'"),
    "unknown dtype": (
        _edited(_set("chol", dtype="float4096")),
        "column 'chol': unknown dtype 'float4096'",
    ),
    "target not in the schema": (
        _edited(lambda d: d.update(target="bmi")),
        "target column 'bmi' is not in the schema",
    ),
    "not JSON": ('{"columns": [', "schema is not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCHEMAS))
def test_schema_file_that_disagrees(case, folders, capsys):
    inputs, out = folders
    text, message = BAD_SCHEMAS[case]
    data = inputs / "t.csv"
    clean().to_csv(data, index=False)
    schema = inputs / "schema.json"
    schema.write_text(text)

    assert_api_error(
        lambda: pg.Synthesizer(epochs=1).fit(
            read_table(data), schema=pg.Schema.load(schema)
        ),
        message,
        pg.SchemaError,
    )
    argv = ["fit", data, "--schema", schema, "--epochs", "1", "--quiet"]
    argv += ["--model", out / "model.psygentab"]
    assert_cli_error(argv, message, capsys, inputs=inputs, out=out)


# -------------------------------------------------------------- model files
# One constraint keeps the compiled program small; with exact_match the model
# file holds the training rows' hashes.
FIT = ["fit", "--target", "disease", "--epochs", "1", "--seed", "0", "--quiet"]
FIT += ["--constraint", "exact_match == 0"]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """One tiny model, fitted by the CLI on an awkward but valid table.

    The table has a byte-order mark, a non-ASCII column name and a constant
    column (``dataset`` is "Cleveland" in the first 60 rows).
    """
    folder = tmp_path_factory.mktemp("model")
    heart = datasets.load("heart_disease_uci").rename(columns={"age": "âge"})
    data = folder / "heart.csv"
    heart.head(60).to_csv(data, index=False, encoding="utf-8-sig")
    other_rows = folder / "heart_other_rows.csv"
    heart.iloc[60:120].to_csv(other_rows, index=False)
    other_table = folder / "other_table.csv"
    clean(60).to_csv(other_table, index=False)
    model = folder / "model.psygentab"
    code = cli.main([str(a) for a in [*FIT, data, "--model", model]])
    assert code in (0, cli.EXIT_NOT_MET)
    synthetic = folder / "synthetic.csv"
    argv = ["sample", "--model", model, "-n", "40", "--seed", "1", "--out", synthetic]
    assert cli.main([str(a) for a in argv]) == 0
    return dataclasses.make_dataclass(
        "ModelFiles",
        ["folder", "data", "model", "synthetic", "other_rows", "other_table"],
    )(folder, data, model, synthetic, other_rows, other_table)


def _payload(model: Path) -> dict:
    return msgpack.unpackb(model.read_bytes(), raw=False)


def _repacked(**changes):
    def write(files, folder: Path) -> Path:
        payload = _payload(files.model)
        for key, value in changes.items():
            if value is None:
                payload.pop(key)
            else:
                payload[key] = value
        path = folder / "model.psygentab"
        path.write_bytes(msgpack.packb(payload, use_bin_type=True))
        return path

    return write


def _raw(make: Callable[[bytes], bytes]):
    def write(files, folder: Path) -> Path:
        path = folder / "model.psygentab"
        path.write_bytes(make(files.model.read_bytes()))
        return path

    return write


class _Touch:
    """Unpickling this creates a file: proof that code from a file ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _marker(folder: Path) -> Path:
    return folder.parent / "code-ran-on-load"


def _pickled_params(files, folder: Path) -> Path:
    payload = _payload(files.model)
    payload["params"] = pickle.dumps(_Touch(str(_marker(folder))))
    path = folder / "model.psygentab"
    path.write_bytes(msgpack.packb(payload, use_bin_type=True))
    return path


def _pickle_file(files, folder: Path) -> Path:
    path = folder / "model.psygentab"
    path.write_bytes(pickle.dumps(_Touch(str(_marker(folder)))))
    return path


BAD_MODELS = {
    "truncated model file": (
        _raw(lambda b: b[: len(b) // 2]),
        "is not a psygentab model file",
    ),
    "empty model file": (_raw(lambda b: b""), "is not a psygentab model file"),
    "random bytes": (
        _raw(lambda b: np.random.default_rng(0).bytes(4096)),
        "is not a psygentab model file",
    ),
    "a JSON file": (
        _raw(lambda b: json.dumps({"format": "psygentab-model"}).encode()),
        "is not a psygentab model file",
    ),
    "another format version": (_repacked(version=99), "model format version 99"),
    "format version as text": (_repacked(version="1"), "model format version '1'"),
    "damaged payload (no meta)": (
        _repacked(meta=None),
        "is a damaged psygentab model file",
    ),
    "damaged payload (meta not JSON)": (
        _repacked(meta="{nope"),
        "is a damaged psygentab model file",
    ),
    "pickle in place of the parameters": (
        _pickled_params,
        "damaged psygentab model file.*parameters do not fit",
    ),
    "a pickle file": (_pickle_file, "is not a psygentab model file"),
    "no such model file": (
        lambda files, folder: folder / "absent.psygentab",
        "cannot read model file",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_file(case, model_files, folders, capsys):
    inputs, out = folders
    write, message = BAD_MODELS[case]
    path = write(model_files, inputs)

    assert_api_error(lambda: pg.Synthesizer.load(path), message)
    argv = ["sample", "--model", path, "-n", "5", "--out", out / "rows.csv"]
    assert_cli_error(argv, message, capsys, inputs=inputs, out=out)
    argv = ["audit", "--model", path, "--synthetic", model_files.synthetic]
    assert_cli_error(
        [*argv, "--json", out / "audit.json"], message, capsys, inputs=inputs, out=out
    )
    assert not _marker(inputs).exists(), "loading a model ran code from the file"


def _gone(files, folder: Path) -> dict:
    """A model whose remembered training table was deleted."""
    moved = folder / "heart.csv"
    moved.write_bytes(files.data.read_bytes())
    synth = pg.Synthesizer.load(files.model)
    synth.data_info = {**synth.data_info, "path": str(moved)}
    model = synth.save(folder / "model.psygentab")
    moved.unlink()
    return {"model": model}


MISMATCHED = {
    "model from another table (audit --data)": (
        "audit",
        lambda files, folder: {"data": files.other_table},
        r"does not match this model's schema: it lacks its columns "
        r"\['âge', 'dataset', 'cp', .*\] and has columns it does not list "
        r"\['age', 'outcome'\]",
    ),
    "model from another table (evaluate --data)": (
        "evaluate",
        lambda files, folder: {"data": files.other_table},
        r"does not match this model's schema: it lacks its columns",
    ),
    "same columns, other rows (audit --data)": (
        "audit",
        lambda files, folder: {"data": files.other_rows},
        "differs from the one this model was fitted on .*SHA-256 mismatch",
    ),
    "synthetic rows of another table (audit --synthetic)": (
        "audit",
        lambda files, folder: {"synthetic": files.other_table},
        r"lacks learned columns \['ca', 'cp', 'disease'",
    ),
    "training table gone (audit without --data)": (
        "audit",
        _gone,
        "which is gone; pass the training table",
    ),
}


@pytest.mark.parametrize("case", sorted(MISMATCHED))
def test_model_used_with_another_table(case, model_files, folders, capsys):
    inputs, out = folders
    command, make, message = MISMATCHED[case]
    files = {"model": model_files.model, "synthetic": model_files.synthetic}
    files.update(make(model_files, inputs))

    def api():
        synth = pg.Synthesizer.load(files["model"])
        data = read_table(files["data"]) if "data" in files else None
        synthetic = read_table(files["synthetic"])
        run = synth.audit if command == "audit" else synth.evaluate
        return run(synthetic, data=data)

    assert_api_error(api, message)
    argv = [command] + [f"--{k}={v}" for k, v in files.items()]
    argv += ["--json", out / "results.json"]
    before = digests(model_files.folder)
    assert_cli_error(argv, message, capsys, inputs=inputs, out=out)
    assert digests(model_files.folder) == before


# -------------------------------------------------------------- constraints
BAD_CONSTRAINTS = {
    "dcr_share <=": "does not parse",
    "foo <= 1": "names unknown metric 'foo'",
    "dcr_share <= abc": "does not parse",
    "dcr_share <= nan": "does not parse",
    "dcr_share => 0.5": "does not parse",
    "": "does not parse",
    "dcr_share <= 1.5": r"dcr_share lies in \[0, 1\], so 1.5 can never",
    "mia_auc >= -0.1": r"mia_auc lies in \[0, 1\], so -0.1 can never",
    "dcr_share <= 1e999": r"so inf can never",
    "exact_match == 0.5": "exact_match can only be required to be 0",
}


@pytest.mark.parametrize("text", sorted(BAD_CONSTRAINTS))
def test_bad_constraint(text, folders, capsys):
    inputs, out = folders
    message = BAD_CONSTRAINTS[text]
    data = inputs / "t.csv"
    clean().to_csv(data, index=False)

    assert_api_error(lambda: pg.parse_constraint(text), message)
    assert_api_error(
        lambda: pg.Synthesizer(epochs=1).fit(read_table(data), constraints=[text]),
        message,
    )
    argv = ["fit", data, "--constraint", text, "--epochs", "1", "--quiet"]
    argv += ["--model", out / "model.psygentab"]
    assert_cli_error(argv, message, capsys, inputs=inputs, out=out)


def test_strict_operators_read_as_their_inclusive_form():
    assert pg.parse_constraint("dcr_share < 0.5") == pg.Constraint(
        "dcr_share", "<=", 0.5
    )
    assert pg.parse_constraint("nndr>0.8") == pg.Constraint("nndr", ">=", 0.8)


# ------------------------------------------------------------- CLI arguments
def _cli_arguments(data: Path, model: Path, out: Path) -> dict:
    fit = ["fit", data, "--quiet"]
    return {
        "--epochs 0": ([*fit, "--epochs", "0", "--model", out / "m"], "--epochs"),
        "--epochs abc": ([*fit, "--epochs", "abc", "--model", out / "m"], "--epochs"),
        "--seed -1": ([*fit, "--seed", "-1", "--model", out / "m"], "--seed"),
        "--model is the input table": (
            [*fit, "--epochs", "1", "--model", data],
            "--model .* is also the command's input",
        ),
        "--checkpoint is the input table": (
            [*fit, "--epochs", "1", "--model", out / "m", "--checkpoint", data],
            "--checkpoint .* is also the command's input",
        ),
        "-n 0": (
            ["sample", "--model", model, "-n", "0", "--out", out / "s.csv"],
            "argument -n: expected a positive integer",
        ),
        "sample --out with another suffix": (
            ["sample", "--model", model, "-n", "5", "--out", out / "s.txt"],
            "must end in .csv or .parquet",
        ),
        "sample --out is a folder": (
            ["sample", "--model", model, "-n", "5", "--out", out],
            "is a folder",
        ),
        "frontier --thresholds 0.5,abc": (
            ["frontier", data, "--target", "outcome", "--thresholds", "0.5,abc"]
            + ["--json", out / "f.json"],
            "--thresholds must be numbers",
        ),
        "an unknown command": (["nonsense"], "invalid choice: 'nonsense'"),
    }


@pytest.mark.parametrize(
    "case", sorted(_cli_arguments(Path("d"), Path("m"), Path("o")))
)
def test_bad_cli_arguments(case, model_files, folders, capsys):
    inputs, out = folders
    data = inputs / "t.csv"
    clean().to_csv(data, index=False)
    argv, message = _cli_arguments(data, model_files.model, out)[case]
    assert_cli_error(argv, message, capsys, inputs=inputs, out=out)


def test_sample_counts_through_the_api(model_files):
    synth = pg.Synthesizer.load(model_files.model)
    with pytest.raises(ValueError, match="n must be non-negative"):
        synth.sample(-1)
    empty = synth.sample(0)
    assert len(empty) == 0 and list(empty.columns) == synth.encoder.schema.names


# ------------------------------------------------------------ end to end
SUBPROCESS = {
    "empty file": ("module", ["schema", "{in}/empty.csv"], "is empty"),
    "truncated model file": (
        "module",
        ["sample", "--model", "{in}/cut.psygentab", "-n", "5", "--out", "{out}/s.csv"],
        "is not a psygentab model file",
    ),
    "Parquet with nested types": (
        "entry point",
        ["fit", "{in}/t.parquet", "--model", "{out}/m"],
        "has nested columns 'codes'",
    ),
    "bad constraint": (
        "entry point",
        ["fit", "{in}/t.csv", "--constraint", "foo <= 1", "--model", "{out}/m"],
        "unknown metric 'foo'",
    ),
}


@pytest.mark.parametrize("case", sorted(SUBPROCESS))
def test_no_traceback_from_a_real_process(case, model_files, folders):
    inputs, out = folders
    how, argv, message = SUBPROCESS[case]
    (inputs / "empty.csv").write_bytes(b"")
    clean().to_csv(inputs / "t.csv", index=False)
    spoiled(codes=lambda n: [[i] for i in range(n)])().to_parquet(inputs / "t.parquet")
    model = model_files.model.read_bytes()
    (inputs / "cut.psygentab").write_bytes(model[: len(model) // 3])
    before = digests(inputs)
    if how == "module":
        command = [sys.executable, "-m", "psygentab_jax.cli"]
    else:
        script = Path(sys.executable).parent / "psygentab"
        if not script.is_file():
            pytest.skip(f"no installed entry point at {script}")
        command = [str(script)]

    argv = [a.format(**{"in": inputs, "out": out}) for a in argv]
    done = subprocess.run(
        command + argv, capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == cli.EXIT_BAD_INPUT, done.stderr
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), done.stderr
    assert message in lines[0] and "Traceback" not in done.stderr
    assert done.stdout == ""
    assert digests(inputs) == before
    assert sorted(out.iterdir()) == []


# ------------------------------------------------------ valid awkward model
def test_awkward_table_fits_and_samples_end_to_end(model_files):
    rows = pd.read_csv(model_files.synthetic)
    heart = pd.read_csv(model_files.data, encoding="utf-8-sig")
    assert list(rows.columns) == list(heart.columns)  # BOM gone, "âge" kept
    assert list(rows.columns)[0] == "âge"
    assert set(rows["dataset"]) == {"Cleveland"}  # the constant column
    assert len(rows) == 40


# ----------------------------------------------------------- determinism
def test_same_seed_same_bytes(model_files, tmp_path, capsys):
    def sample(seed: int, name: str) -> bytes:
        path = tmp_path / name
        argv = ["sample", "--model", model_files.model, "-n", "40", "--seed", seed]
        assert cli.main([str(a) for a in [*argv, "--out", path]]) == 0
        return path.read_bytes()

    first = sample(1, "a.csv")
    assert sample(1, "b.csv") == first
    assert model_files.synthetic.read_bytes() == first  # the fixture's own draw
    assert sample(2, "c.csv") != first

    synth = pg.Synthesizer.load(model_files.model)
    again = pg.Synthesizer.load(model_files.model)
    pd.testing.assert_frame_equal(synth.sample(40, seed=1), again.sample(40, seed=1))
    assert not synth.sample(40, seed=1).equals(synth.sample(40, seed=2))


def test_same_seed_same_model_file(model_files, tmp_path):
    model = tmp_path / "again.psygentab"
    code = cli.main([str(a) for a in [*FIT, model_files.data, "--model", model]])
    assert code in (0, cli.EXIT_NOT_MET)
    assert model.read_bytes() == model_files.model.read_bytes()


# ----------------------------------------------------------- safe model files
def test_model_file_carries_version_and_schema(model_files):
    payload = _payload(model_files.model)
    assert payload["format"] == "psygentab-model"
    assert isinstance(payload["version"], int)
    stored = pg.Schema.from_dict(json.loads(payload["meta"])["encoder"]["schema"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inferred = pg.infer_schema(
            pd.read_csv(model_files.data, encoding="utf-8-sig"), target="disease"
        )
    assert stored == inferred
    assert pg.Synthesizer.load(model_files.model).encoder.schema == inferred


def test_no_pickle_or_eval_in_the_package():
    unsafe = re.compile(
        r"\bimport (c?pickle|dill|cloudpickle|joblib|shelve|marshal)\b"
        r"|\bpickle\.loads?\(|allow_pickle\s*=\s*True|(?<![\w.])(eval|exec)\("
    )
    sources = sorted((ROOT / "psygentab_jax").rglob("*.py"))
    assert sources
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in sources
        for match in unsafe.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []
