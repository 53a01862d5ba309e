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
from pathlib import Path

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


EXIT_NOT_MET = 3


class _Progress:
    """A one-line progress bar with a rate, on stderr (the CLI's, not the library's)."""

    def __init__(self, total: int, label: str, quiet: bool = False):
        self.total, self.label, self.quiet = total, label, quiet
        self.start = time.perf_counter()

    def __call__(self, done: int, info: dict | None = None) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        width = 24
        filled = int(width * done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        extra = ""
        if info and "feasible" in info:
            extra = "  feasible" if info["feasible"] else "  violated"
        end = "\n" if done >= self.total else ""
        print(
            f"\r{self.label} [{bar}] {done}/{self.total} {rate:.2f}/s{extra}",
            end=end,
            file=sys.stderr,
            flush=True,
        )


def _read_schema(path):
    from psygentab_jax._src.schema import Schema

    return Schema.load(path) if path else None


def _print_status(audit: dict) -> None:
    for status in audit["constraints"]:
        mark = "met" if status["met"] else "NOT MET"
        print(
            f"  {status['name']:<28} value {status['value']:.4f}  {mark}",
            file=sys.stderr,
        )


def _fit(args: argparse.Namespace) -> int:
    from psygentab_jax._src.io import read_table
    from psygentab_jax._src.synthesizer import Synthesizer

    df = read_table(args.data)
    synth = Synthesizer(backbone=args.backbone, epochs=args.epochs, seed=args.seed)
    progress = _Progress(args.epochs, "fit", args.quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synth.fit(
            df,
            target=args.target,
            constraints=args.constraint or None,
            schema=_read_schema(args.schema),
            callback=progress,
            data_path=str(Path(args.data).resolve()),
        )
    audit = synth.audit()
    synth.save(args.model)
    print(json.dumps({"model": args.model, "audit": audit}, indent=2, default=float))
    _print_status(audit)
    return 0 if audit["all_met"] else EXIT_NOT_MET


def _sample(args: argparse.Namespace) -> int:
    from psygentab_jax._src.io import write_table
    from psygentab_jax._src.synthesizer import Synthesizer

    synth = Synthesizer.load(args.model)
    condition = None
    if args.condition:
        column, sep, value = args.condition.partition("=")
        if not sep:
            raise ValueError(f"--condition must be COL=VALUE, not {args.condition!r}")
        condition = {column: value}
    rows = synth.sample(args.n, condition=condition, seed=args.seed)
    write_table(rows, args.out)
    print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    return 0


def _load_with_data(args):
    from psygentab_jax._src.io import read_table
    from psygentab_jax._src.synthesizer import Synthesizer

    synth = Synthesizer.load(args.model)
    data = read_table(args.data) if args.data else None
    return synth, data, read_table(args.synthetic)


def _audit(args: argparse.Namespace) -> int:
    from psygentab_jax._src.io import write_text

    synth, data, synthetic = _load_with_data(args)
    audit = synth.audit(synthetic, data=data)
    write_text(args.json, json.dumps(audit, indent=2, default=float))
    _print_status(audit)
    return 0 if audit["all_met"] else EXIT_NOT_MET


def _evaluate(args: argparse.Namespace) -> int:
    from psygentab_jax._src.io import write_text

    synth, data, synthetic = _load_with_data(args)
    results = synth.evaluate(synthetic, data=data)
    write_text(args.json, json.dumps(results, indent=2, default=float))
    return 0


def _report(args: argparse.Namespace) -> int:
    synth, data, synthetic = _load_with_data(args)
    path, _ = write_full_report(synth, synthetic, args.out, data=data)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def write_full_report(synth, synthetic, out, *, data=None, frontier=None):
    """Audit, evaluate and write the HTML report; returns ``(path, results)``."""
    results = synth.report(out, synthetic, data=data, frontier=frontier)
    return Path(out), results


def _frontier(args: argparse.Namespace) -> int:
    from psygentab_jax._src import peers
    from psygentab_jax._src.io import read_table, write_atomic, write_text
    from psygentab_jax._src.report import frontier_figure
    from psygentab_jax._src.synthesizer import Synthesizer, frontier_points

    df = read_table(args.data)
    thresholds = [float(t) for t in args.thresholds.split(",") if t.strip()]
    if not thresholds:
        raise ValueError("--thresholds needs at least one number")
    synth = Synthesizer(backbone=args.backbone, epochs=args.epochs, seed=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = synth.fit_frontier(
            df, args.target, args.metric, thresholds, constraints=args.constraint
        )
        points = frontier_points(models, args.metric)
        if peers.sdv_available() and not args.no_peers:
            points["points"] += _peer_points(models[0], args.metric, args.seed)
    write_text(args.json, json.dumps(points, indent=2, default=float))
    if args.plot:
        figure = frontier_figure(points)
        write_atomic(args.plot, lambda p: figure.savefig(p, format="png", dpi=110))
    print(json.dumps(points, indent=2, default=float))
    return 0


def _peer_points(model, metric: str, seed: int) -> list[dict]:
    """SDV's synthesizers on the same split, audited and evaluated the same way."""
    from psygentab_jax._src import peers
    from psygentab_jax._src.synthesizer import _tstr_auc

    train = model._frames["train"]
    out = []
    for name in peers.SDV_SYNTHESIZERS:
        rows = peers.sdv_sample(
            name,
            train,
            len(train),
            identifiers=model.encoder.schema.identifiers,
            seed=seed,
        )
        audit = model.audit(rows)
        value = [s["value"] for s in audit["constraints"] if s["metric"] == metric]
        out.append(
            {
                "label": f"SDV {name.removesuffix('Synthesizer')}",
                "privacy": value[0],
                "utility": _tstr_auc(model.evaluate(rows), "boosting"),
            }
        )
    return out


def _demo(args: argparse.Namespace) -> int:
    from psygentab_jax import datasets
    from psygentab_jax._src.io import write_table, write_text
    from psygentab_jax._src.synthesizer import Synthesizer

    start = time.perf_counter()
    out = Path(args.out)
    info = datasets.info(datasets.EMBEDDED)
    df = datasets.load(datasets.EMBEDDED)
    synth = Synthesizer(backbone=args.backbone, epochs=args.epochs, seed=args.seed)
    progress = _Progress(args.epochs, "fit", args.quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synth.fit(df, target=info.target, callback=progress)
    synthetic = synth.sample(len(df), seed=args.seed)
    write_table(synthetic, out / "synthetic.csv")
    synth.save(out / "model.psygentab")
    report, results = write_full_report(synth, synthetic, out / "report.html")
    summary = {
        "dataset": datasets.EMBEDDED,
        "citation": info.citation,
        "rows": len(df),
        "synthetic_rows": len(synthetic),
        "constraints": results["constraints"],
        "privacy": results["privacy"],
        "outputs": {
            "synthetic": str(out / "synthetic.csv"),
            "model": str(out / "model.psygentab"),
            "report": str(report),
        },
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2, default=float))
    print(json.dumps(summary, indent=2, default=float))
    met = all(c["met"] for c in summary["constraints"])
    return 0 if met else EXIT_NOT_MET


def _model_options(parser, epochs: int = 100) -> None:
    parser.add_argument("--backbone", choices=("vae", "gan"), default="vae")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


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

    fit = commands.add_parser("fit", help="fit a model under privacy constraints")
    fit.add_argument("data", help="a .csv or .parquet table")
    fit.add_argument("--target", default=None)
    fit.add_argument(
        "--constraint",
        action="append",
        default=[],
        help="e.g. 'dcr_share <= 0.55' (repeatable; defaults when none)",
    )
    _model_options(fit)
    fit.add_argument("--schema", default=None, help="a schema JSON to use")
    fit.add_argument("--model", required=True, help="where to write the model")
    fit.set_defaults(run=_fit)

    sample = commands.add_parser("sample", help="write synthetic rows")
    sample.add_argument("--model", required=True)
    sample.add_argument("-n", type=int, required=True)
    sample.add_argument("--out", required=True, help="a .csv or .parquet file")
    sample.add_argument("--condition", default=None, help="COL=VALUE")
    sample.add_argument("--seed", type=int, default=None)
    sample.set_defaults(run=_sample)

    for name, run, help_text in (
        ("audit", _audit, "exact privacy audit on the holdout"),
        ("evaluate", _evaluate, "utility and fidelity on the holdout"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--model", required=True)
        command.add_argument("--synthetic", required=True)
        command.add_argument("--json", required=True, help="where to write results")
        command.add_argument("--data", default=None, help="the training table")
        command.set_defaults(run=run)

    report = commands.add_parser("report", help="HTML report (and JSON)")
    report.add_argument("--model", required=True)
    report.add_argument("--synthetic", required=True)
    report.add_argument("--out", required=True, help="the .html file")
    report.add_argument("--data", default=None)
    report.set_defaults(run=_report)

    frontier = commands.add_parser(
        "frontier", help="privacy-utility frontier, K thresholds in one program"
    )
    frontier.add_argument("data")
    frontier.add_argument("--target", required=True)
    frontier.add_argument("--metric", default="dcr_share")
    frontier.add_argument("--thresholds", default="0.5,0.55,0.6,0.7")
    frontier.add_argument("--constraint", action="append", default=[])
    _model_options(frontier)
    frontier.add_argument("--json", required=True)
    frontier.add_argument("--plot", default=None, help="a .png of the curve")
    frontier.add_argument(
        "--no-peers", action="store_true", help="skip SDV even when installed"
    )
    frontier.set_defaults(run=_frontier)

    demo = commands.add_parser("demo", help="the main job on the embedded table")
    _model_options(demo, epochs=60)
    demo.add_argument("--out", default="psygentab-demo", help="output folder")
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
