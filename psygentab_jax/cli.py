"""The ``psygentab`` command line.

Every error a user can cause ends in one line on stderr and a non-zero exit code,
never a traceback: 2 for bad input or arguments, 3 when a constraint is not met,
1 when a command fails for another reason (set ``PSYGENTAB_DEBUG=1`` to see the
traceback of an unexpected error). A failed command leaves no output file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

EXIT_FAILED = 1
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

    def __init__(
        self,
        total: int,
        label: str,
        quiet: bool = False,
        *,
        unit: str = "",
        every: float = 0.0,
    ):
        self.total, self.label, self.quiet = total, label, quiet
        self.unit, self.every = unit, every
        self.start = self.shown = time.perf_counter()
        # The rate counts from the first report on, so that a resumed fit (whose
        # first report is past 0) shows its own pace.
        self.first: tuple[int, float] | None = None

    def __call__(self, done: int, info: dict | None = None) -> None:
        if self.quiet:
            return
        now = time.perf_counter()
        if self.first is None:
            self.first = (done, now)
        if done < self.total and now - self.shown < self.every:
            return
        self.shown = now
        base, since = self.first
        rate = (done - base) / (now - since) if done > base and now > since else None
        width = 24
        filled = int(width * done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        extra = ""
        if info and "feasible" in info:
            extra = "  feasible" if info["feasible"] else "  violated"
        end = "\n" if done >= self.total else ""
        if rate is None:
            speed = "..."
        elif self.unit:
            speed = f"{rate:,.0f} {self.unit}/s"
        else:
            speed = f"{rate:.2f}/s"
        print(
            f"\r{self.label} [{bar}] {done}/{self.total} {speed}{extra}",
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


def _mesh(devices, *, default_all: bool = False):
    """The mesh of ``--devices`` (``None``: one device, or all when distributed)."""
    from psygentab_jax._src import sharding

    if devices is None and not default_all:
        return None
    return sharding.data_mesh(None if devices in (None, "all") else devices)


def _devices(text: str):
    if text == "all":
        return text
    return _positive_int(text)


def _fit(args: argparse.Namespace) -> int:
    import jax

    from psygentab_jax._src import sharding
    from psygentab_jax._src.io import read_table
    from psygentab_jax._src.synthesizer import Synthesizer

    distributed = sharding.initialize()  # no-op unless the launch asks for it
    df = read_table(args.data)
    synth = Synthesizer(
        backbone=args.backbone,
        epochs=args.epochs,
        seed=args.seed,
        mesh=_mesh(args.devices, default_all=distributed),
    )
    checkpoint = None
    if not args.no_checkpoint:
        checkpoint = args.checkpoint or f"{args.model}.ckpt"
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
            checkpoint=checkpoint,
            checkpoint_every=args.checkpoint_every,
        )
    if distributed:
        # Replicated on every host: a host copy keeps the audit and the file local.
        synth.params = jax.device_get(synth.params)
    audit = synth.audit()
    if jax.process_index() == 0:
        synth.save(args.model)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    print(json.dumps({"model": args.model, "audit": audit}, indent=2, default=float))
    _print_status(audit)
    return 0 if audit["all_met"] else EXIT_NOT_MET


def _sample(args: argparse.Namespace) -> int:
    import jax

    from psygentab_jax._src import sharding
    from psygentab_jax._src.synthesizer import Synthesizer, part_rows

    part = args.part
    if sharding.initialize() and part is None:  # a multi-host launch: one part each
        part = (jax.process_index(), jax.process_count())
    out = args.out if part is None or part[1] == 1 else part_path(args.out, *part)
    if part is not None and Path(out).resolve() == Path(args.model).resolve():
        raise ValueError(f"--out part {out!r} is the model file; choose another path")
    synth = Synthesizer.load(args.model)
    synth.set_mesh(_mesh(args.devices))
    condition = None
    if args.condition:
        column, sep, value = args.condition.partition("=")
        if not sep:
            raise ValueError(f"--condition must be COL=VALUE, not {args.condition!r}")
        condition = {column: value}
    total = args.n if part is None else part_rows(args.n, *part)
    progress = _Progress(total, "sample", args.quiet, unit="rows", every=0.25)
    rows = synth.sample_to_file(
        out,
        args.n,
        condition=condition,
        seed=args.seed,
        chunk_rows=args.chunk_rows,
        progress=progress,
        part=part,
    )
    print(f"wrote {rows} rows to {out}", file=sys.stderr)
    return 0


def part_path(out: str, index: int, count: int) -> str:
    """The file of part ``index`` of ``count``: ``rows.parquet`` ->
    ``rows-00001-of-00004.parquet``."""
    path = Path(out)
    return str(path.with_name(f"{path.stem}-{index:05d}-of-{count:05d}{path.suffix}"))


def _part(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    try:
        value = (int(index), int(count)) if sep else None
    except ValueError:
        value = None
    if value is None or not 0 <= value[0] < value[1]:
        raise argparse.ArgumentTypeError(
            f"expected K/P with 0 <= K < P (part K of P), not {text!r}"
        )
    return value


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
    parser.add_argument("--epochs", type=_positive_int, default=epochs)
    parser.add_argument("--seed", type=_seed, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    fit.add_argument(
        "--checkpoint",
        default=None,
        help="the run's checkpoint file (default: MODEL.ckpt); a fit that finds "
        "it resumes from it, and it is deleted once the model is written",
    )
    fit.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=1,
        help="epochs between checkpoints (default: 1)",
    )
    fit.add_argument("--no-checkpoint", action="store_true", help="write no checkpoint")
    fit.add_argument(
        "--devices",
        type=_devices,
        default=None,
        help="train data-parallel on the first N devices, or 'all' (default: one "
        "device; all of them in a multi-host launch, see the README)",
    )
    fit.set_defaults(run=_fit)

    sample = commands.add_parser("sample", help="write synthetic rows")
    sample.add_argument("--model", required=True)
    sample.add_argument("-n", type=_positive_int, required=True)
    sample.add_argument("--out", required=True, help="a .csv or .parquet file")
    sample.add_argument("--condition", default=None, help="COL=VALUE")
    sample.add_argument("--seed", type=_seed, default=None)
    sample.add_argument(
        "--chunk-rows",
        type=_positive_int,
        default=65_536,
        help="rows per compiled sampling call (memory is bounded by a few chunks)",
    )
    sample.add_argument(
        "--devices",
        type=_devices,
        default=None,
        help="sample on the first N devices, or 'all' (default: one device)",
    )
    sample.add_argument(
        "--part",
        type=_part,
        default=None,
        metavar="K/P",
        help="write part K of P (from 0) of the N rows, for P hosts or jobs, to "
        "--out's name with -0000K-of-0000P before its suffix (default: the whole "
        "sample; in a multi-host launch, each process its own part)",
    )
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
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


class _UsageError(Exception):
    """A command line argparse rejects; ``prog`` names the (sub)command."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block) for ``main``."""

    def error(self, message):
        raise _UsageError(self.prog, f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(
            f"expected an integer seed from 0 to {2**31 - 1}, not {text!r}"
        )
    return value


# Per command: the attributes naming files it reads and files it writes.
_INPUTS = {
    "schema": ("file",),
    "fit": ("data", "schema"),
    "sample": ("model",),
    "audit": ("model", "synthetic", "data"),
    "evaluate": ("model", "synthetic", "data"),
    "report": ("model", "synthetic", "data"),
    "frontier": ("data",),
}
_OUTPUTS = {
    "fit": ("model", "checkpoint"),
    "sample": ("out",),
    "audit": ("json",),
    "evaluate": ("json",),
    "report": ("out",),
    "frontier": ("json", "plot"),
}


def _validate(args: argparse.Namespace) -> None:
    """Reject arguments that would fail late or harm an input, before any work.

    Raises:
      ValueError: an output would overwrite an input or is a folder, a table
        output has an unknown suffix, or a constraint or threshold is malformed.
    """
    from psygentab_jax._src.io import TABLE_SUFFIXES

    inputs = {}
    for attr in _INPUTS.get(args.command, ()):
        value = getattr(args, attr, None)
        if value:
            inputs[Path(value).resolve()] = attr
    outputs = [
        (attr, getattr(args, attr, None)) for attr in _OUTPUTS.get(args.command, ())
    ]
    if args.command == "report":
        outputs.append(("out", str(Path(args.out).with_suffix(".json"))))
    for attr, value in outputs:
        if not value:
            continue
        flag = f"--{attr}"
        source = inputs.get(Path(value).resolve())
        if source is not None:
            raise ValueError(
                f"{flag} {value!r} is also the command's input ({source}); "
                "choose another path: inputs are never overwritten"
            )
        if Path(value).is_dir():
            raise ValueError(f"{flag} {value!r} is a folder; name a file")
    if args.command == "sample":
        if Path(args.out).suffix.lower() not in TABLE_SUFFIXES:
            raise ValueError(f"--out {args.out!r} must end in .csv or .parquet")
    if args.command not in ("fit", "frontier"):
        return
    from psygentab_jax._src import constraints as cons

    for text in args.constraint:
        cons.parse(text)
    if args.command == "frontier":
        if args.metric not in cons.METRICS:
            raise ValueError(
                f"--metric {args.metric!r} is not a metric; known: "
                f"{', '.join(cons.METRICS)}"
            )
        for text in args.thresholds.split(","):
            try:
                value = float(text) if text.strip() else None
            except ValueError:
                raise ValueError(
                    f"--thresholds must be numbers separated by commas, not "
                    f"{args.thresholds!r}"
                ) from None
            if value is not None:
                cons.parse(f"{args.metric} <= {value!r}")


def _one_line(err: BaseException) -> str:
    """The first line of an exception's message (a ``KeyError``'s without quotes)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else err
    text = str(text).strip()
    return text.splitlines()[0] if text else type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (errors are one line on stderr)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        print(f"{err.prog}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    prog = f"psygentab {args.command}"
    try:
        _validate(args)
        return args.run(args)
    except (ValueError, OSError, KeyError) as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeError as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("PSYGENTAB_DEBUG"):
            raise
        print(
            f"{prog}: error: unexpected {type(err).__name__}: {_one_line(err)} "
            "(set PSYGENTAB_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
