"""The ``psygentab`` command line.

Every error a user can cause ends in one line on stderr and a non-zero exit code
(2 for bad input), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence

EXIT_BAD_INPUT = 2


def _schema(args: argparse.Namespace) -> int:
    from psygentab_jax._src.io import read_table
    from psygentab_jax._src.schema import infer_schema

    df = read_table(args.file)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schema = infer_schema(df, target=args.target)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(schema.to_json())
    return 0


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    from psygentab_jax import datasets
    from psygentab_jax._src.encoder import TableEncoder
    from psygentab_jax._src.schema import infer_schema

    start = time.perf_counter()
    info = datasets.info(datasets.EMBEDDED)
    df = datasets.load(datasets.EMBEDDED)
    schema = infer_schema(df, target=info.target, warn=False)
    encoder = TableEncoder(schema, seed=args.seed).fit(df)
    encoded = encoder.encode(df)
    back = encoder.decode(encoded)
    same = all(
        back[c].dtype == df[c].dtype and back[c].isna().equals(df[c].isna())
        for c in df.columns
    )
    numeric = [c.name for c in schema.columns if c.kind in ("continuous", "integer")]
    worst = max(
        float(np.nanmax(np.abs(back[c].to_numpy(float) - df[c].to_numpy(float))))
        for c in numeric
    )
    kinds: dict[str, list[str]] = {}
    for column in schema.columns:
        kinds.setdefault(column.kind, []).append(column.name)
    summary = {
        "dataset": datasets.EMBEDDED,
        "citation": info.citation,
        "rows": len(df),
        "columns": kinds,
        "target": schema.target,
        "encoded_width": encoder.layout.width,
        "round_trip_dtypes_and_missing_identical": bool(same),
        "round_trip_max_abs_error_numeric": worst,
        "seconds": round(time.perf_counter() - start, 3),
    }
    print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psygentab",
        description="Privacy-constrained synthetic clinical tables (JAX).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    schema = commands.add_parser("schema", help="print the inferred schema as JSON")
    schema.add_argument("file", help="a .csv or .parquet table")
    schema.add_argument("--target", default=None, help="the outcome column")
    schema.set_defaults(run=_schema)

    demo = commands.add_parser("demo", help="run the main job on the embedded table")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError, KeyError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        print(f"psygentab {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
