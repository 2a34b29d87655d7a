#!/usr/bin/env bash
# The GPU benchmarks and a smoke study, in one short run (about 8 minutes) on a GPU machine.
#
#     bash bench/gpu_check.sh                 # writes into $OUT, or docs/bench/gpu/ when OUT is unset
#
# Needs (installs nothing): a CUDA build of torch and this project installed with its
# dependencies (`pip install -e .`: ray[tune], optuna, scikit-learn, ...), in .venv/ or on PATH
# as `python` (override with PYTHON=...). One visible GPU is used; the data are rendered into
# $VAE_STUDY_CACHE (default ~/.cache/vae-study) on the first load (under a second).
#
# Steps, each under its own time limit (60 + 90 + 180 + 130 s; a step that runs over is stopped
# and the next one runs; the benchmarks print each row as it is measured, so its log keeps them):
#   env.txt            nvidia-smi, versions
#   training_cuda.md   bench/bench_training.py --device cuda (images/s, FLOPs, fraction of bf16 peak)
#   smoke_study.log    python -m study.launch --space compare --preset smoke --gpus-per-trial 0.25
#   gpu_packing.md     bench/bench_gpu_packing.py (1, 2, 4, 8 trials sharing the GPU)
#   gpu_paths.md       bench/bench_gpu_paths.py (bf16 / channels-last / compile vs float32)
#   <step>.log         each step's full output; summary.txt: exit code and seconds per step
# Afterwards copy the .md files into docs/bench/gpu/ and the figures into docs/benchmarks.md.

set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$REPO/docs/bench/gpu}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
cd "$REPO"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
export RAY_AUTH_MODE=disabled RAY_AIR_NEW_OUTPUT=0 PYTHONUNBUFFERED=1

if ! "$PYTHON" -c "import torch, ray, optuna, trainables, study
if not torch.cuda.is_available(): raise SystemExit(f'no CUDA GPU visible to torch {torch.__version__}')" \
        2>"$OUT/setup_error.txt"; then
    echo "gpu_check: needs a CUDA GPU, a CUDA build of torch and this project installed (pip install -e .)" \
         "for $PYTHON: $(tail -n 1 "$OUT/setup_error.txt")" >&2
    exit 2
fi
rm -f "$OUT/setup_error.txt" "$OUT/summary.txt"

{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv 2>&1
    "$PYTHON" -c "import sys, torch, ray, optuna; print('python', sys.version.split()[0], '| torch', torch.__version__, \
'| cuda', torch.version.cuda, '| cudnn', torch.backends.cudnn.version(), '| ray', ray.__version__, '| optuna', \
optuna.__version__, '| gpu', torch.cuda.get_device_name(), '| cpus', __import__('os').cpu_count())"
    git rev-parse HEAD 2>/dev/null
} > "$OUT/env.txt" 2>&1

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "== $name (limit ${limit} s): $*"
    timeout --kill-after=15 "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    echo "$name rc=$rc $((SECONDS - start))s" | tee -a "$OUT/summary.txt"
    tail -n 25 "$OUT/$name.log"
}

step training 60 "$PYTHON" bench/bench_training.py --device cuda --steps 30 --out "$OUT/training_cuda.md"
step smoke_study 90 "$PYTHON" -m study.launch --space compare --preset smoke --gpus-per-trial 0.25 \
    --storage "$OUT/studies" --name smoke
step gpu_packing 180 "$PYTHON" bench/bench_gpu_packing.py --seconds 8 --out "$OUT/gpu_packing.md"
step gpu_paths 130 "$PYTHON" bench/bench_gpu_paths.py --device cuda --epochs 2 --out "$OUT/gpu_paths.md"
# Drop model checkpoints of the smoke study (results, journal, report and images stay).
find "$OUT/studies" -name 'trainer.pt' -delete 2>/dev/null
echo "done: $OUT ($(cat "$OUT/summary.txt" | tr '\n' ';'))"
