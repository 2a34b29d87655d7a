#!/usr/bin/env bash
# The GPU benchmarks and a smoke study, in one short run (at most about 8.5 minutes) on a GPU machine.
#
#     bash bench/gpu_check.sh                 # writes into $OUT, or docs/bench/gpu/ when OUT is unset
#
# Installs nothing. Needs a CUDA build of torch with numpy and pillow (the training benchmarks
# need nothing else; the project is put on PYTHONPATH, so `pip install -e .` is not required for
# them). The Ray steps (GPU packing, the smoke study) also need ray[tune], and the smoke study
# optuna, scikit-learn, pandas, pyarrow and plotly, i.e. `pip install -e .`; a step whose
# packages are missing is skipped and says so in summary.txt. Python: $PYTHON, else .venv/bin/python,
# else python3. The data are rendered into $VAE_STUDY_CACHE (default ~/.cache/vae-study), < 1 s.
#
# Steps, each under its own time limit (60 + 160 + 180 + 90 s; a step that runs over is stopped
# and the next one runs; the benchmarks print every row as it is measured, into logs.txt, and
# bench_training / bench_gpu_packing rewrite their table after every row, so a step cut short
# keeps what it measured):
#   training_cuda.md   bench/bench_training.py --device cuda (images/s, FLOPs, fraction of bf16 peak;
#                      --precision auto = bf16 on the GPU)
#   gpu_paths.md       bench/bench_gpu_paths.py (bf16 / channels-last / compile / CUDA graphs vs float32)
#   gpu_packing.md     bench/bench_gpu_packing.py (1, 2, 4, 8 trials sharing the GPU)       [ray]
#   smoke_study.txt    python -m study.launch --space compare --preset smoke --gpus-per-trial 0.25 [ray, optuna]
# plus env.txt (nvidia-smi, versions), summary.txt (exit code and seconds per step) and logs.txt
# (the end of every step's output): 7 files, flat, as the project's device tool returns them.
# Afterwards copy the .md files into docs/bench/gpu/ and the figures into docs/benchmarks.md.

set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$REPO/docs/bench/gpu}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
cd "$REPO"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" RAY_AUTH_MODE=disabled RAY_AIR_NEW_OUTPUT=0 PYTHONUNBUFFERED=1
rm -f "$OUT/summary.txt" "$OUT/logs.txt"

if ! "$PYTHON" -c "import numpy, torch, trainables.trainer
if not torch.cuda.is_available(): raise SystemExit(f'no CUDA GPU visible to torch {torch.__version__}')" \
        2>"$SCRATCH/setup.txt"; then
    echo "gpu_check: needs a CUDA GPU and a CUDA build of torch (with numpy) for $PYTHON:" \
         "$(tail -n 1 "$SCRATCH/setup.txt")" >&2
    exit 2
fi

has() {  # has MODULE...: all importable
    "$PYTHON" -c "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]" "$@" 2>/dev/null
}

{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv 2>&1
    "$PYTHON" -c "import importlib.metadata as m, os, sys, torch
def ver(p):
    try: return m.version(p)
    except m.PackageNotFoundError: return 'absent'
print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda, '| cudnn',
      torch.backends.cudnn.version(), '| gpu', torch.cuda.get_device_name(), '| cpus', os.cpu_count())
print(' | '.join(f'{p} {ver(p)}' for p in ('numpy', 'ray', 'optuna', 'scikit-learn', 'pandas', 'pyarrow', 'plotly')))"
    git rev-parse HEAD 2>/dev/null
} > "$OUT/env.txt" 2>&1

step() {  # step NAME SECONDS "MODULES NEEDED" COMMAND...
    local name=$1 limit=$2 needs=$3 start=$SECONDS rc
    shift 3
    if [ -n "$needs" ] && ! has $needs; then
        echo "$name skipped: needs the Python packages $needs" | tee -a "$OUT/summary.txt"
        return
    fi
    echo "== $name (limit ${limit} s): $*"
    timeout --kill-after=15 "$limit" "$@" > "$SCRATCH/$name.log" 2>&1
    rc=$?
    echo "$name rc=$rc $((SECONDS - start))s" | tee -a "$OUT/summary.txt"
    { echo "==== $name (rc=$rc): $*"; tail -n 60 "$SCRATCH/$name.log"; echo; } >> "$OUT/logs.txt"
}

step training 60 "" "$PYTHON" bench/bench_training.py --device cuda --steps 30 --out "$OUT/training_cuda.md"
step gpu_paths 160 "" "$PYTHON" bench/bench_gpu_paths.py --device cuda --epochs 2 --out "$OUT/gpu_paths.md"
step gpu_packing 180 "ray ray.tune" "$PYTHON" bench/bench_gpu_packing.py --seconds 8 --out "$OUT/gpu_packing.md"
step smoke_study 90 "ray ray.tune optuna sklearn pandas pyarrow plotly" "$PYTHON" -m study.launch --space compare \
    --preset smoke --gpus-per-trial 0.25 --storage "$SCRATCH/studies" --name smoke
if [ -f "$SCRATCH/smoke_study.log" ]; then
    { cat "$SCRATCH/smoke_study.log"; echo; cat "$SCRATCH/studies/smoke/study.json" 2>/dev/null; } > "$OUT/smoke_study.txt"
fi
echo "done: $OUT ($(tr '\n' ';' < "$OUT/summary.txt"))"
