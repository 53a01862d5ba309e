"""End-to-end benchmark: our constrained synthesizer beside SDV on the clinical tables.

Run from the repository root, in an environment holding both this package and SDV::

    .venv-bench/bin/python benchmarks/bench_end_to_end.py            # every table
    .venv-bench/bin/python benchmarks/bench_end_to_end.py --quick    # smoke run

For every table of the benchmark collection (``psygentab_jax.datasets.DATASETS``)
it fits, on the same training rows:

* ``Synthesizer`` with the VAE and with the GAN backbone, under the default
  constraints (``DEFAULT_CONSTRAINTS``);
* SDV's ``GaussianCopulaSynthesizer``, ``CTGANSynthesizer`` and
  ``TVAESynthesizer`` with their default settings except ``epochs``.

Each synthesizer emits as many rows as the training split holds. Every synthetic
frame then goes through the same exact privacy audit (:meth:`Synthesizer.audit`, on
the holdout patients) and the same utility and fidelity evaluation
(``psygentab_jax._src.evaluate``), so all numbers come from one code path on one
split. SDV never sees identifier columns: they are dropped before its fit and come
back as fresh keys ``1..n``, as our decoder writes them (the audit ignores them).

Where SDV cannot be imported beside this package, pass ``--peer-python`` with an
interpreter that can: SDV then runs there as a subprocess, and the two exchange
Parquet files of training and synthetic rows in a temporary folder.

Outputs, under ``--out`` (``benchmarks/results`` by default):
``end_to_end.md`` (one markdown table, plus the issue's aims met or not met),
``end_to_end.json`` (every number) and ``end_to_end_<table>.png`` (privacy against
utility, one panel per privacy measure). The files are rewritten after every table,
so an interrupted run keeps what it finished.

Fit times are wall-clock seconds on whatever machine runs the script, including
compilation (JAX) and preprocessing (SDV); on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
OURS = ("vae", "gan")
PEERS = ("gaussian_copula", "ctgan", "tvae")
LABELS = {
    "vae": "ours (VAE)",
    "gan": "ours (GAN)",
    "gaussian_copula": "SDV GaussianCopula",
    "ctgan": "SDV CTGAN",
    "tvae": "SDV TVAE",
    "real": "real train (baseline)",
}
QUICK_TABLES = ("pima", "heart_disease_uci")
QUICK_EPOCHS = 5
SDV_DEFAULT_EPOCHS = 300
# Utility aims: TSTR / TRTR at least these, for each downstream classifier.
AUC_RATIO_AIM = 0.9
RECALL_RATIO_AIM = 0.8
MODELS = ("logistic", "gradient_boosting")
SHORT = {"logistic": "LR", "gradient_boosting": "GB"}


# --------------------------------------------------------------------------- #
# Options
# --------------------------------------------------------------------------- #


def parse_epochs(spec: str | None) -> tuple[int | None, dict[str, int]]:
    """``"300"`` or ``"300,covid_testing=40,support2=40"`` -> default and overrides.

    Args:
      spec: the option's text, or ``None`` for no setting.

    Returns:
      ``(default, {table: epochs})``; ``default`` is ``None`` when not given.
    """
    if spec is None:
        return None, {}
    default, per_table = None, {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if "=" in part:
            table, value = part.split("=", 1)
            per_table[table.strip()] = int(value)
        else:
            default = int(part)
    return default, per_table


def epochs_for(setting: tuple[int | None, dict[str, int]], table: str) -> int | None:
    default, per_table = setting
    return per_table.get(table, default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tables",
        help="comma-separated table names (default: every table of DATASETS)",
    )
    parser.add_argument(
        "--epochs",
        help="our epochs: N, optionally with per-table overrides, e.g. "
        "'100,covid_testing=40' (default: the Synthesizer's own default)",
    )
    parser.add_argument(
        "--sdv-epochs",
        help="CTGAN and TVAE epochs, same form as --epochs "
        f"(default: {SDV_DEFAULT_EPOCHS}, SDV's default)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {', '.join(QUICK_TABLES)} with {QUICK_EPOCHS} epochs "
        "everywhere (unless --tables / --epochs / --sdv-epochs say otherwise)",
    )
    parser.add_argument(
        "--synthesizers",
        default=",".join(OURS + PEERS),
        help="comma-separated subset of " + ", ".join(OURS + PEERS),
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data",
        help="folder of the tables (default: $PSYGENTAB_DATA, else ../shared/data "
        "beside the checkout)",
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument(
        "--name",
        default="end_to_end",
        help="stem of the output files (default: end_to_end)",
    )
    parser.add_argument(
        "--peer-python",
        help="run SDV under this interpreter as a subprocess (default: in this "
        "process when SDV imports, else .venv-bench/bin/python)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the tables already in the JSON output and run only the others",
    )
    parser.add_argument("--sdv-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.quick:
        args.tables = args.tables or ",".join(QUICK_TABLES)
        args.epochs = args.epochs or str(QUICK_EPOCHS)
        args.sdv_epochs = args.sdv_epochs or str(QUICK_EPOCHS)
    args.sdv_epochs = args.sdv_epochs or str(SDV_DEFAULT_EPOCHS)
    args.synthesizers = [s.strip() for s in args.synthesizers.split(",") if s.strip()]
    unknown = sorted(set(args.synthesizers) - set(OURS + PEERS))
    if unknown:
        parser.error(f"unknown synthesizers {unknown}; known: {OURS + PEERS}")
    return args


# --------------------------------------------------------------------------- #
# SDV, in this process or in a peer interpreter
# --------------------------------------------------------------------------- #


def sdv_importable() -> bool:
    try:
        import sdv  # noqa: F401
    except ImportError:
        return False
    return True


def fit_sdv(kind: str, train: pd.DataFrame, rows: int, epochs: int, seed: int):
    """Fit one SDV synthesizer on ``train`` and draw ``rows`` rows.

    Column types are SDV's own detection, except that a column it takes for a key
    (sdtype ``id``) is modelled as categorical: identifiers were dropped already, so
    such a column is data (``test_id`` in covid_testing) that SDV would otherwise
    replace with random strings.

    Returns:
      ``(synthetic frame, fit seconds, sample seconds)``.
    """
    import random

    import torch
    from sdv.metadata import Metadata
    from sdv.single_table import (
        CTGANSynthesizer,
        GaussianCopulaSynthesizer,
        TVAESynthesizer,
    )

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    start = time.perf_counter()
    table = "table"
    metadata = Metadata.detect_from_dataframes({table: train}, infer_keys=None)
    for column, spec in metadata.to_dict()["tables"][table]["columns"].items():
        if spec["sdtype"] == "id":
            metadata.update_column(column, sdtype="categorical", table_name=table)
    if kind == "gaussian_copula":
        model = GaussianCopulaSynthesizer(metadata)
    else:
        cls = CTGANSynthesizer if kind == "ctgan" else TVAESynthesizer
        model = cls(metadata, epochs=epochs, enable_gpu=False)
    model.fit({table: train})
    fit_s = time.perf_counter() - start

    start = time.perf_counter()
    sampled = model.sample(rows)
    if isinstance(sampled, dict):  # SDV 2 returns {table: frame}
        sampled = sampled[table]
    return sampled.reset_index(drop=True), fit_s, time.perf_counter() - start


def sdv_worker(job_path: str) -> None:
    """The peer side: read a job file, fit, write the synthetic rows and timings."""
    job = json.loads(Path(job_path).read_text())
    train = pd.read_parquet(job["train"])
    frame, fit_s, sample_s = fit_sdv(
        job["kind"], train, job["rows"], job["epochs"], job["seed"]
    )
    frame.to_parquet(job["synthetic"], index=False)
    Path(job["timing"]).write_text(json.dumps({"fit_s": fit_s, "sample_s": sample_s}))


def run_sdv(kind, train, rows, epochs, seed, peer_python):
    """:func:`fit_sdv` here, or through :func:`sdv_worker` under ``peer_python``."""
    if peer_python is None:
        return fit_sdv(kind, train, rows, epochs, seed)
    with tempfile.TemporaryDirectory(prefix="psygentab-e2e-") as folder:
        folder = Path(folder)
        job = {
            "kind": kind,
            "rows": rows,
            "epochs": epochs,
            "seed": seed,
            "train": str(folder / "train.parquet"),
            "synthetic": str(folder / "synthetic.parquet"),
            "timing": str(folder / "timing.json"),
        }
        train.to_parquet(job["train"], index=False)
        (folder / "job.json").write_text(json.dumps(job))
        command = [peer_python, __file__, "--sdv-worker", str(folder / "job.json")]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"SDV worker failed ({done.returncode}):\n{done.stderr[-4000:]}"
            )
        timing = json.loads(Path(job["timing"]).read_text())
        frame = pd.read_parquet(job["synthetic"])
    return frame, timing["fit_s"], timing["sample_s"]


def with_fresh_keys(
    frame: pd.DataFrame, real: pd.DataFrame, identifiers
) -> pd.DataFrame:
    """Put the identifier columns back as fresh keys, in the real column order."""
    frame = frame.copy()
    for name in identifiers:
        keys = np.arange(1, len(frame) + 1)
        if pd.api.types.is_numeric_dtype(real[name]):
            frame[name] = keys.astype(real[name].dtype)
        else:
            frame[name] = [f"syn-{k}" for k in keys]
    return frame[list(real.columns)]


# --------------------------------------------------------------------------- #
# One table
# --------------------------------------------------------------------------- #


def evaluate_frame(auditor, synthetic: pd.DataFrame, *, baseline: bool) -> dict:
    """Utility and fidelity of ``synthetic`` on the auditor's split.

    The same call :meth:`Synthesizer.evaluate` makes (same schema, split and seed),
    except that the real-vs-real fidelity baseline, the same for every synthesizer
    of a table, is computed only when ``baseline`` is set.
    """
    from psygentab_jax._src import evaluate as evaluate_lib

    frames = auditor._frames
    return evaluate_lib.evaluate(
        frames["train"],
        frames["holdout"],
        synthetic,
        auditor.encoder.schema.target,
        schema=auditor.encoder.schema,
        seed=auditor.seed,
        baseline=baseline,
    )


def summarize(audit: dict, evaluation: dict) -> dict:
    """The numbers the markdown table and the aims read, from audit and evaluate."""
    utility = evaluation["utility"]
    privacy = audit["privacy"]
    return {
        "tstr_auc": {m: utility["tstr"][m]["roc_auc"] for m in MODELS},
        "trtr_auc": {m: utility["trtr"][m]["roc_auc"] for m in MODELS},
        "tstr_recall": {m: utility["tstr"][m]["minority_recall"] for m in MODELS},
        "trtr_recall": {m: utility["trtr"][m]["minority_recall"] for m in MODELS},
        "auc_ratio": {m: utility["ratio"][m]["roc_auc"] for m in MODELS},
        "recall_ratio": {m: utility["ratio"][m]["minority_recall"] for m in MODELS},
        "dcr_share": privacy["dcr_share"]["value"],
        "dcr_share_holdout": privacy["dcr_share"]["baseline"],
        "mia_distance_auc": privacy["mia_distance_auc"]["value"],
        "mia_density_auc": privacy["mia_density_auc"]["value"],
        "mia_auc": max(
            privacy["mia_distance_auc"]["value"], privacy["mia_density_auc"]["value"]
        ),
        "exact_match_rate": privacy["exact_match_rate"]["value"],
        "constraints": {c["name"]: c["met"] for c in audit["constraints"]},
        "all_met": audit["all_met"],
        "detection_auc": evaluation["fidelity"]["detection_auc"],
    }


def mean_auc(aucs: dict) -> float | None:
    values = [v for v in aucs.values() if v is not None]
    return float(np.mean(values)) if values else None


def run_table(name: str, df: pd.DataFrame, target: str, args, log) -> dict:
    """Fit every synthesizer on one table; audit and evaluate each the same way."""
    from psygentab_jax._src.synthesizer import Synthesizer

    ours_epochs = epochs_for(args.epochs_setting, name)
    sdv_epochs = epochs_for(args.sdv_epochs_setting, name)
    record = {
        "table": name,
        "target": target,
        "rows": len(df),
        "epochs": {"ours": ours_epochs, "sdv": sdv_epochs},
        "runs": {},
    }
    auditor = None
    fitted: dict[str, tuple[pd.DataFrame, float, float, dict]] = {}

    def fit_ours(backbone: str):
        kwargs = {} if ours_epochs is None else {"epochs": ours_epochs}
        start = time.perf_counter()
        synth = Synthesizer(backbone=backbone, seed=args.seed, **kwargs)
        synth.fit(df, target=target)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        synthetic = synth.sample(len(synth._frames["train"]))
        extra = {
            "epochs": synth.epochs,
            "best_epoch": synth.result.best_epoch,
            "feasible_during_training": synth.result.feasible_during_training,
            "diverged": synth.result.diverged,
            "split": synth.data_info["split"],
        }
        return synth, (synthetic, fit_s, time.perf_counter() - start, extra)

    for backbone in [b for b in OURS if b in args.synthesizers]:
        log(f"[{name}] fitting ours ({backbone}), epochs={ours_epochs or 'default'}")
        try:
            synth, result = fit_ours(backbone)
        except Exception:
            record["runs"][backbone] = {"error": traceback.format_exc()}
            log(f"[{name}] ours ({backbone}) FAILED:\n{traceback.format_exc()}")
            continue
        if auditor is None:
            auditor = synth
        elif result[3]["split"] != auditor.data_info["split"]:
            raise RuntimeError(f"[{name}] the two backbones split the rows differently")
        fitted[backbone] = result

    if auditor is None:
        # Neither backbone ran: fit a one-epoch model only for its split and audit.
        log(f"[{name}] fitting a one-epoch auditor (not reported)")
        auditor = Synthesizer(backbone="vae", epochs=1, seed=args.seed)
        auditor.fit(df, target=target)

    train = auditor._frames["train"]
    identifiers = list(auditor.encoder.schema.identifiers)
    record["split_rows"] = {k: len(v) for k, v in auditor._frames.items()}
    record["identifiers"] = identifiers
    for kind in [p for p in PEERS if p in args.synthesizers]:
        epochs = None if kind == "gaussian_copula" else sdv_epochs
        log(f"[{name}] fitting SDV {kind}" + (f", epochs={epochs}" if epochs else ""))
        try:
            synthetic, fit_s, sample_s = run_sdv(
                kind,
                train.drop(columns=identifiers),
                len(train),
                epochs or SDV_DEFAULT_EPOCHS,
                args.seed,
                args.peer_python,
            )
            synthetic = with_fresh_keys(synthetic, train, identifiers)
        except Exception:
            record["runs"][kind] = {"error": traceback.format_exc()}
            log(f"[{name}] SDV {kind} FAILED:\n{traceback.format_exc()}")
            continue
        fitted[kind] = (synthetic, fit_s, sample_s, {"epochs": epochs})

    first = True
    for kind, (synthetic, fit_s, sample_s, extra) in fitted.items():
        log(f"[{name}] auditing and evaluating {kind}")
        start = time.perf_counter()
        try:
            audit = auditor.audit(synthetic)
            evaluation = evaluate_frame(auditor, synthetic, baseline=first)
        except Exception:
            record["runs"][kind] = {"error": traceback.format_exc()}
            log(f"[{name}] audit/evaluate of {kind} FAILED:\n{traceback.format_exc()}")
            continue
        if first:
            record["baseline"] = real_baseline(audit, evaluation)
            first = False
        extra = {k: v for k, v in extra.items() if k != "split"}
        record["runs"][kind] = {
            **extra,
            "fit_s": fit_s,
            "sample_s": sample_s,
            "audit_evaluate_s": time.perf_counter() - start,
            "summary": summarize(audit, evaluation),
            "audit": {k: v for k, v in audit.items() if k != "report"},
            "audit_report": audit.get("report"),
            "utility": evaluation["utility"],
            "fidelity": evaluation["fidelity"],
        }
    return record


def real_baseline(audit: dict, evaluation: dict) -> dict:
    """The levels fresh real patients reach: holdout privacy figures and TRTR."""
    utility = evaluation["utility"]
    privacy = audit["privacy"]
    return {
        "trtr_auc": {m: utility["trtr"][m]["roc_auc"] for m in MODELS},
        "trtr_recall": {m: utility["trtr"][m]["minority_recall"] for m in MODELS},
        "dcr_share": privacy["dcr_share"]["baseline"],
        "mia_distance_auc": privacy["mia_distance_auc"]["baseline"],
        "mia_density_auc": privacy["mia_density_auc"]["baseline"],
        "exact_match_rate": privacy["exact_match_rate"]["baseline"],
        "detection_auc": evaluation["fidelity_baseline"]["detection_auc"],
    }


# --------------------------------------------------------------------------- #
# Aims
# --------------------------------------------------------------------------- #


def at_least(value, reference, factor) -> bool | None:
    """``value >= factor * reference``, ``None`` when either is undefined."""
    if value is None or reference is None:
        return None
    return bool(value >= factor * reference - 1e-12)


def check_aims(records: list[dict]) -> list[dict]:
    """The issue's four aims, per table and backbone of ours.

    1. Every default constraint met on the holdout audit.
    2. TSTR ROC-AUC >= 0.9 x TRTR, for each downstream classifier.
    3. Minority recall under TSTR >= 0.8 x TRTR, for each downstream classifier.
    4. No SDV synthesizer with TSTR ROC-AUC (mean of the classifiers) at least ours
       is more private than ours: lower dcr_share or lower MIA AUC (the stronger of
       the two attacks).
    """
    aims = [
        {"aim": "every default constraint met on the holdout audit (ours)"},
        {"aim": f"TSTR ROC-AUC >= {AUC_RATIO_AIM} x TRTR (LR and GB)"},
        {"aim": f"minority recall TSTR >= {RECALL_RATIO_AIM} x TRTR (LR and GB)"},
        {
            "aim": "at least as private (dcr_share and MIA AUC) as every SDV "
            "synthesizer with equal or better TSTR ROC-AUC"
        },
    ]
    for aim in aims:
        aim["checks"] = []
    for record in records:
        runs = record["runs"]
        for backbone in OURS:
            run = runs.get(backbone)
            where = f"{record['table']}/{backbone}"
            if run is None:
                continue
            if "summary" not in run:
                for aim in aims:
                    aim["checks"].append(
                        {"where": where, "met": False, "why": "failed"}
                    )
                continue
            s = run["summary"]
            aims[0]["checks"].append(
                {
                    "where": where,
                    "met": bool(s["all_met"]),
                    "why": ", ".join(
                        f"{k}: {'met' if v else 'not met'}"
                        for k, v in s["constraints"].items()
                    ),
                }
            )
            for aim, key, factor in (
                (aims[1], "auc", AUC_RATIO_AIM),
                (aims[2], "recall", RECALL_RATIO_AIM),
            ):
                verdicts = {
                    m: at_least(s[f"tstr_{key}"][m], s[f"trtr_{key}"][m], factor)
                    for m in MODELS
                }
                aim["checks"].append(
                    {
                        "where": where,
                        "met": all(v is True for v in verdicts.values()),
                        "why": ", ".join(
                            f"{SHORT[m]} {fmt(s[f'tstr_{key}'][m])}/"
                            f"{fmt(s[f'trtr_{key}'][m])}"
                            for m in MODELS
                        ),
                    }
                )
            ours_auc = mean_auc(s["tstr_auc"])
            beaten = []
            for peer in PEERS:
                other = runs.get(peer, {}).get("summary")
                if other is None or ours_auc is None:
                    continue
                peer_auc = mean_auc(other["tstr_auc"])
                if peer_auc is None or peer_auc < ours_auc:
                    continue
                worse = [
                    f"{key} {fmt(s[key])} > {fmt(other[key])}"
                    for key in ("dcr_share", "mia_auc")
                    if s[key] > other[key]
                ]
                if worse:
                    beaten.append(f"{peer} (TSTR {fmt(peer_auc)}): " + "; ".join(worse))
            aims[3]["checks"].append(
                {
                    "where": where,
                    "met": not beaten,
                    "why": "; ".join(beaten) or f"TSTR {fmt(ours_auc)}, not dominated",
                }
            )
    for aim in aims:
        aim["met"] = bool(aim["checks"]) and all(c["met"] for c in aim["checks"])
    return aims


# --------------------------------------------------------------------------- #
# Writing
# --------------------------------------------------------------------------- #


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return f"{value:.{digits}f}"


def pair(values: dict, digits: int = 3) -> str:
    return " / ".join(fmt(values[m], digits) for m in MODELS)


def markdown(meta: dict, records: list[dict], aims: list[dict]) -> str:
    constraints = meta["constraints"]
    lines = ["# End-to-end benchmark: psygentab-jax beside SDV", ""]
    for earlier in meta.get("resumed", []):
        kept = ", ".join(earlier.get("tables", [])) or "its tables"
        lines += [
            f"Kept from an earlier run (`--resume`): {kept}, from "
            f"`{earlier['command']}` ({earlier['wall_s'] / 60:.1f} min wall).",
            "",
        ]
    lines += [
        f"Command: `{meta['command']}`",
        "",
        f"- Run: {meta['started']}, {meta['wall_s'] / 60:.1f} min wall; "
        f"{meta['machine']}.",
        f"- Versions: {meta['versions']}.",
        f"- Epochs, ours (both backbones): {meta['epochs_ours']}. "
        f"SDV CTGAN and TVAE: {meta['epochs_sdv']}. GaussianCopula has none.",
        f"- Ours under the default constraints: {', '.join(constraints)}.",
        "- One split per table (seed "
        f"{meta['seed']}): train / reference / holdout = 70 / 10 / 20 %, stratified "
        "on the target and grouped by a repeating identifier. Every synthesizer "
        "trains on the train rows (ours also compare against the reference rows "
        "while training) and emits as many rows as train holds.",
        "- Audit: `Synthesizer.audit` on the holdout for every synthesizer; "
        "dcr_share = share of synthetic rows closer to train than to the holdout "
        "(holdout-patient baseline in brackets); MIA AUC = distance / density "
        "attack; exact = synthetic rows equal to a train row.",
        "- Utility: TSTR trains on synthetic rows and tests on the holdout, TRTR "
        "on the real train rows; LR = logistic regression, GB = gradient boosting; "
        "ratios are TSTR / TRTR; recall is the minority class's. Detection AUC: a "
        "classifier telling synthetic from train rows (0.5 = indistinguishable).",
        "- Fit seconds include JIT compilation (ours) and preprocessing (SDV).",
        "",
    ]
    header = [
        "table",
        "synthesizer",
        "fit s",
        "TSTR AUC LR / GB",
        "AUC ratio LR / GB",
        "recall ratio LR / GB",
        "dcr_share (holdout)",
        "MIA AUC dist / dens",
        "exact",
        *[f"`{c}`" for c in constraints],
        "detection AUC",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for record in records:
        base = record.get("baseline")
        if base is not None:
            row = [
                record["table"],
                LABELS["real"],
                "",
                f"{pair(base['trtr_auc'])} (TRTR)",
                "1 / 1",
                "1 / 1",
                fmt(base["dcr_share"]),
                f"{fmt(base['mia_distance_auc'])} / {fmt(base['mia_density_auc'])}",
                fmt(base["exact_match_rate"]),
                *[""] * len(constraints),
                fmt(base["detection_auc"]),
            ]
            lines.append("| " + " | ".join(row) + " |")
        for kind, run in record["runs"].items():
            label = LABELS[kind]
            if "summary" not in run:
                last = run["error"].strip().splitlines()[-1][:120].replace("|", "/")
                row = [record["table"], label, f"failed: {last}"]
                row += [""] * (len(header) - len(row))
                lines.append("| " + " | ".join(row) + " |")
                continue
            s = run["summary"]
            row = [
                record["table"],
                label,
                f"{run['fit_s']:.0f}",
                pair(s["tstr_auc"]),
                pair(s["auc_ratio"], 2),
                pair(s["recall_ratio"], 2),
                f"{fmt(s['dcr_share'])} ({fmt(s['dcr_share_holdout'])})",
                f"{fmt(s['mia_distance_auc'])} / {fmt(s['mia_density_auc'])}",
                fmt(s["exact_match_rate"]),
                *[fmt(s["constraints"].get(c)) for c in constraints],
                fmt(s["detection_auc"]),
            ]
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Aims of the issue", ""]
    for aim in aims:
        verdict = "met" if aim["met"] else "NOT met"
        lines.append(f"- **{verdict}**: {aim['aim']}.")
        for check in aim["checks"]:
            mark = "met" if check["met"] else "not met"
            lines.append(f"  - {check['where']}: {mark} ({check['why']})")
    return "\n".join(lines) + "\n"


def plot_table(record: dict, constraints, path: Path) -> Path | None:
    """Privacy against TSTR ROC-AUC for every synthesizer of one table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {k: r["summary"] for k, r in record["runs"].items() if "summary" in r}
    if not runs:
        return None
    base = record.get("baseline", {})
    thresholds = {}
    for text in constraints:
        parts = text.split()
        if len(parts) == 3 and parts[1] in ("<=", "<"):
            thresholds[parts[0]] = float(parts[2])
    panels = (
        ("dcr_share", "dcr_share (share of rows closer to train than holdout)"),
        ("mia_auc", "MIA AUC (stronger of distance / density)"),
    )
    markers = {"vae": "*", "gan": "P", "gaussian_copula": "o", "ctgan": "s"}
    markers["tvae"] = "D"
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, (key, label) in zip(axes, panels, strict=True):
        for kind, s in runs.items():
            y = mean_auc(s["tstr_auc"])
            if y is None:
                continue
            size = 160 if kind in OURS else 70
            axis.scatter(s[key], y, marker=markers[kind], s=size, label=LABELS[kind])
        trtr = mean_auc(base.get("trtr_auc", {}))
        if trtr is not None:
            axis.axhline(trtr, color="0.3", lw=1, label="TRTR")
            axis.axhline(
                AUC_RATIO_AIM * trtr,
                color="0.3",
                lw=1,
                ls="--",
                label=f"{AUC_RATIO_AIM} x TRTR",
            )
        if key in thresholds:
            axis.axvline(thresholds[key], color="tab:red", lw=1, ls=":", label="limit")
        baseline = base.get("dcr_share" if key == "dcr_share" else "mia_distance_auc")
        if baseline is not None:
            axis.axvline(baseline, color="tab:green", lw=1, ls="-.", label="holdout")
        axis.set_xlabel(label + "  (lower = more private)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("TSTR ROC-AUC (mean of LR and GB)")
    axes[1].legend(fontsize=8, loc="best")
    figure.suptitle(f"{record['table']}: privacy against utility")
    figure.tight_layout()
    from psygentab_jax._src import io

    io.write_atomic(path, lambda p: figure.savefig(p, dpi=120, format="png"))
    plt.close(figure)
    return path


def versions() -> str:
    import jax

    found = [f"python {platform.python_version()}", f"jax {jax.__version__}"]
    found.append(f"pandas {pd.__version__}")
    with contextlib.suppress(ImportError):
        import sdv
        import torch

        found += [f"sdv {sdv.__version__}", f"torch {torch.__version__}"]
    return ", ".join(found)


def write_outputs(meta, records, out: Path, stem: str, log) -> list[dict]:
    from psygentab_jax._src import io

    aims = check_aims(records)
    meta = {**meta, "wall_s": time.perf_counter() - meta["start_perf"]}
    payload = {"meta": meta, "tables": records, "aims": aims}
    written = [
        io.write_text(out / f"{stem}.json", json.dumps(payload, indent=1, default=str)),
        io.write_text(out / f"{stem}.md", markdown(meta, records, aims)),
    ]
    for record in records:
        try:
            path = out / f"{stem}_{record['table']}.png"
            written.append(plot_table(record, meta["constraints"], path))
        except Exception:
            log(f"[{record['table']}] figure FAILED:\n{traceback.format_exc()}")
    for path in filter(None, written):
        os.chmod(path, 0o644)  # the atomic writer's temporary file is private
    return aims


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sdv_worker:
        sdv_worker(args.sdv_worker)
        return 0

    warnings.simplefilter("ignore")
    from psygentab_jax import datasets
    from psygentab_jax._src.synthesizer import DEFAULT_CONSTRAINTS, Synthesizer

    def log(message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} {message}", flush=True)

    wants_sdv = any(p in args.synthesizers for p in PEERS)
    if wants_sdv and args.peer_python is None and not sdv_importable():
        args.peer_python = str(REPO / ".venv-bench" / "bin" / "python")
        log(f"SDV not importable here; running it under {args.peer_python}")
    args.epochs_setting = parse_epochs(args.epochs)
    args.sdv_epochs_setting = parse_epochs(args.sdv_epochs)

    data = args.data or os.environ.get("PSYGENTAB_DATA") or REPO.parent / "shared/data"
    tables = args.tables.split(",") if args.tables else list(datasets.DATASETS)
    default_epochs = Synthesizer.__init__.__kwdefaults__["epochs"]
    meta = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "start_perf": time.perf_counter(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU "
        "(shared machine: timings noisy)",
        "versions": versions(),
        "seed": args.seed,
        "constraints": list(DEFAULT_CONSTRAINTS),
        "epochs_ours": describe_epochs(args.epochs_setting, default_epochs),
        "epochs_sdv": describe_epochs(args.sdv_epochs_setting, SDV_DEFAULT_EPOCHS),
        "synthesizers": args.synthesizers,
        "peer_python": args.peer_python,
    }
    out = Path(args.out)
    records: list[dict] = []
    previous = out / f"{args.name}.json"
    if args.resume and previous.exists():
        earlier = json.loads(previous.read_text())
        records = [r for r in earlier["tables"] if r["table"] in tables]
        meta["resumed"] = [
            *earlier["meta"].get("resumed", []),
            {
                "command": earlier["meta"]["command"],
                "wall_s": earlier["meta"]["wall_s"],
                "tables": [r["table"] for r in records],
            },
        ]
        log(f"resuming: keeping {[r['table'] for r in records]} from {previous}")
    done = {r["table"] for r in records}
    aims = check_aims(records)
    for name in [t for t in tables if t not in done]:
        target = datasets.info(name).target
        df = datasets.load(name, path=data)
        log(f"[{name}] {len(df)} rows x {df.shape[1]} columns, target {target!r}")
        start = time.perf_counter()
        records.append(run_table(name, df, target, args, log))
        log(f"[{name}] done in {time.perf_counter() - start:.0f} s")
        aims = write_outputs(meta, records, out, args.name, log)

    log(f"wrote {out / (args.name + '.md')}, .json and figures")
    print()
    print("Aims of the issue:")
    for aim in aims:
        print(f"  {'met    ' if aim['met'] else 'NOT met'}  {aim['aim']}")
        for check in aim["checks"]:
            if not check["met"]:
                print(f"           not met on {check['where']}: {check['why']}")
    print(f"Wall time: {(time.perf_counter() - meta['start_perf']) / 60:.1f} min")
    return 0


def describe_epochs(setting, default) -> str:
    value, per_table = setting
    text = str(value if value is not None else default)
    if per_table:
        text += " (" + ", ".join(f"{k}: {v}" for k, v in per_table.items()) + ")"
    return text


if __name__ == "__main__":
    sys.exit(main())
