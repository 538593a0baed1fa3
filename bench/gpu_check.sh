#!/usr/bin/env bash
# The training benchmark on a lent GPU machine (see ../shared/gpu/README.md), in one call:
#   1. raw Keras on JAX: .gpu/keras_anchor.py (copied from ../shared/gpu/; the anchor the issue's
#      "auto >= 2x raw Keras defaults on the ResNet-ish anchor" is held against);
#   2. bench/train_profile.py --size gpu: plain model.fit, a job with performance "off" and one with
#      "auto" through an embedded `trainyard serve`, for the seed MLP, a CNN, an LSTM and the same
#      ResNet-ish model as the anchor;
# everything written under $OUT (logs, JSON, the markdown section for bench/RESULTS.md); a job that
# fails prints its error and log tail into train_profile.log (the machine's disk is not kept).
#
# Needs, in the checkout: .whl/ (made by ../shared/gpu/wheels.sh) and .gpu/keras_anchor.py (both
# ignored by git, both carried). Run from the project root:
#   bash bench/gpu_check.sh            on the GPU machine (< 7 minutes on an H200)
#   GPU_CHECK_SIZE=tiny bash bench/gpu_check.sh   a smoke run on any CPU (OUT defaults to /tmp/gpu_check_out)
set -u
OUT=${OUT:-/tmp/gpu_check_out}
SIZE=${GPU_CHECK_SIZE:-gpu}
mkdir -p "$OUT"
started=$(date +%s)
say() { echo "[gpu_check $(($(date +%s) - started))s] $*" | tee -a "$OUT/gpu_check.log"; }

if [ -d .whl ] && [ -z "${GPU_CHECK_NO_INSTALL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    || { say "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
fi
export KERAS_BACKEND=jax
# The benchmark process and the service's worker child share the device: no 75% preallocation.
export XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=2
PY=${PYTHON:-python3}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
  $PY -c 'import jax, keras; print("jax", jax.__version__, jax.devices(), "keras", keras.__version__)' 2>&1
} > "$OUT/machine.txt"
say "machine: $(tr '\n' ' ' < "$OUT/machine.txt")"
$PY -c 'import app.main, app.ml.training, app.jobs.runner, workers.celery_app' > "$OUT/imports.log" 2>&1 \
  || { say "the project does not import:"; tail -20 "$OUT/imports.log"; exit 1; }
say "imports ok"

# 1. the anchor: raw Keras on JAX only (the service runs JAX there); SMOKE shrinks it 50x
anchor_env=()
[ "$SIZE" = gpu ] || anchor_env=(SMOKE=1)
env "${anchor_env[@]}" BACKENDS=jax OUT="$OUT" timeout "${GPU_CHECK_ANCHOR_S:-150}" $PY .gpu/keras_anchor.py > "$OUT/keras_anchor.log" 2>&1
say "keras_anchor rc=$? (keras_anchor.log, keras_anchor.json)"
tail -8 "$OUT/keras_anchor.log"

# 2. the service: plain fit vs performance off vs auto
timeout "${GPU_CHECK_PROFILE_S:-240}" $PY bench/train_profile.py --size "$SIZE" --rounds 1 \
  --out "$OUT/RESULTS-gpu.md" --json "$OUT/train_profile.json" > "$OUT/train_profile.log" 2>&1
rc=$?
say "train_profile rc=$rc (train_profile.log, train_profile.json, RESULTS-gpu.md)"
grep -E '^\{|auto chose|^\||^job .* (failed|cancelled)' "$OUT/train_profile.log" | tail -30
[ $rc -eq 0 ] || tail -40 "$OUT/train_profile.log"
say "done"
