#!/usr/bin/env bash
# The prepared accelerator check: install the checkout, record the environment,
# run benchmarks/bench_accelerator.py under a hard time limit. Under 8 minutes
# in all. Results go to $OUT (default ./gpu-results): accelerator.json,
# accelerator.md, environment.txt, nvidia-smi.txt, pip.log.
#
#     bash benchmarks/gpu_check.sh            # from the repository root
#     SKIP_INSTALL=1 OUT=/tmp/acc bash benchmarks/gpu_check.sh --quick  # CPU check
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-./gpu-results}"
mkdir -p "$OUT"

# No network there: no build isolation, no dependencies (jax with CUDA, flax,
# optax, pandas and scikit-learn are expected to be installed already).
# SKIP_INSTALL=1 leaves the environment alone (to check the script elsewhere).
if [ "${SKIP_INSTALL:-0}" != 1 ] &&
    ! python -m pip install --no-deps --no-build-isolation -e . >"$OUT/pip.log" 2>&1
then
    echo "pip install failed (see $OUT/pip.log); importing from the checkout"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

python - <<'PY' 2>&1 | tee "$OUT/environment.txt"
import importlib
import jax
print("jax", jax.__version__, "backend", jax.default_backend(), jax.devices())
for name in ("jaxlib", "flax", "optax", "chex", "numpy", "pandas", "sklearn"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as error:  # report and go on
        print(name, "MISSING:", error)
PY
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit \
    --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt" || true

# 390 s of measurements (the script's default budget) inside a 450 s hard
# limit; the script rewrites its results after every measurement, so a run cut
# short keeps what it measured.
timeout 450 python benchmarks/bench_accelerator.py "$@"
status=$?
[ "$status" -eq 124 ] && echo "bench_accelerator.py hit the 450 s limit"
exit "$status"
