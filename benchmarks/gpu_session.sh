#!/usr/bin/env bash
# The GPU check (issue 7), prepared as one short script for a machine lent through the `device` tool: a bare,
# offline GPU machine whose python3 has torch, numpy, pandas, scikit-learn, matplotlib and pytest but not this
# project's other dependencies, and none of the offline data. Two halves:
#
#   bash benchmarks/gpu_session.sh prepare      # here, in the repo root: packs .gpu_carry/ (git-ignored)
#   device run: command="bash benchmarks/gpu_session.sh device", carry=[".gpu_carry"], timeout_s=560
#
# `prepare` copies the pure-Python packages the device image lacks (hydra, omegaconf, antlr4,
# pytorch_metric_learning) from this venv into .gpu_carry/site/, and Omniglot, ORL and the Fashion-MNIST IDX
# files into .gpu_carry/data/ (about 45 MB in all; the device tool carries at most 64 MB).
# `device` then runs, each step only while time is left (GPU_BUDGET_S, default 480 s; a step that would not
# finish is stopped, and what ran still comes back):
#   1. the environment (nvidia-smi, torch, the GPU's name) -> $OUT/env.txt
#   2. tests/test_precision.py: the CUDA run against the CPU within tolerance, and the bf16 checks
#   3. CI-sized studies on the GPU: ci_fashion_mnist in fp32 and in bf16, ci_omniglot in fp32 (every learner)
#   4. the triplet row of benchmarks.speed on Fashion-MNIST: training images/s against a plain
#      pytorch-metric-learning loop, both on the GPU
#   5. benchmarks.throughput over the studies (fit steps/s, eval images/s, run time, span) -> $OUT/throughput.md
# Everything else (records, tables, figures; no model weights) -> $OUT/gpu_results.tar.gz, the log -> $OUT/log.txt.
# GPU_DEVICE=cpu runs the same steps on the CPU (to check the script where there is no GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=.gpu_carry

prepare() {
  set -e
  local python="${PYTHON:-.venv/bin/python}"
  rm -rf "$CARRY" && mkdir -p "$CARRY/site" "$CARRY/data/FashionMNIST/raw"
  local site
  site=$("$python" -c "import hydra, os; print(os.path.dirname(os.path.dirname(hydra.__file__)))")
  for pkg in hydra omegaconf antlr4 pytorch_metric_learning; do cp -r "$site/$pkg" "$CARRY/site/"; done
  for dist in hydra_core omegaconf antlr4_python3_runtime pytorch_metric_learning; do  # their versions, for records
    cp -r "$site/$dist"-*.dist-info "$CARRY/site/"
  done
  find "$CARRY/site" -name __pycache__ -prune -exec rm -rf {} +
  local shared="${SIMBENCH_DATA_ROOT:-../shared/data}"
  cp -r "$shared/omniglot" "$shared/att_faces" "$CARRY/data/"
  cp /usr/share/datasets/fashion-mnist/*-ubyte* "$CARRY/data/FashionMNIST/raw/"
  du -sh "$CARRY"
}

device() {
  local out="${OUT:-/tmp/gpu_out}" budget="${GPU_BUDGET_S:-480}" dev="${GPU_DEVICE:-cuda}" start results log
  start=$(date +%s); results="$PWD/results_gpu"; log="$out/log.txt"
  mkdir -p "$out" "$results"
  export PYTHONPATH="$PWD/$CARRY/site:$PWD" SIMBENCH_DATA_ROOT="$PWD/$CARRY/data" PYTHONUNBUFFERED=1
  left() { echo $(( budget - ($(date +%s) - start) )); }
  step() {  # step NAME SECONDS_NEEDED COMMAND...: run it if that much time is left, within the time left
    local name=$1 need=$2; shift 2
    if [ "$(left)" -lt "$need" ]; then echo "== $name: skipped, $(left) s left" | tee -a "$log"; return; fi
    echo "== $name ($(left) s left)" | tee -a "$log"
    local t0=$(date +%s)
    timeout "$(left)" "$@" >> "$log" 2>&1; local rc=$?
    echo "== $name: exit $rc in $(( $(date +%s) - t0 )) s" | tee -a "$log"
  }
  { nvidia-smi -L; python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')"; nproc; } > "$out/env.txt" 2>&1
  cat "$out/env.txt" | tee -a "$log"
  local quiet="hydra/job_logging=none hydra/hydra_logging=none results_dir=$results device=$dev"
  step "precision tests" 60 python3 -m pytest -q -n 0 -p no:cacheprovider tests/test_precision.py
  step "ci_fashion_mnist fp32" 60 python3 -m benchmarks.run -m experiment=ci_fashion_mnist $quiet
  step "ci_fashion_mnist bf16" 60 python3 -m benchmarks.run -m experiment=ci_fashion_mnist precision=bf16 study=ci_fashion_mnist_bf16 $quiet
  step "ci_omniglot fp32" 90 python3 -m benchmarks.run -m experiment=ci_omniglot $quiet
  step "speed: triplet images/s" 40 python3 -m benchmarks.speed --only triplet --dataset fashion_mnist --device "$dev" --repeats 3 --out "$results/speed/speed.csv"
  local studies=""
  for s in ci_fashion_mnist ci_fashion_mnist_bf16 ci_omniglot; do [ -d "$results/runs/$s" ] && studies="$studies $s"; done
  if [ -n "$studies" ]; then
    for s in $studies; do python3 -m benchmarks.report "$s" --results "$results" >> "$log" 2>&1; done
    python3 -m benchmarks.throughput $studies --results "$results" --out "$out/throughput.md" >> "$log" 2>&1
  fi
  echo "gpu_session: done in $(( $(date +%s) - start )) s" | tee -a "$log"
  tar -czf "$out/gpu_results.tar.gz" --exclude='*.pt' --exclude=results_gpu/fits -C "$PWD" results_gpu 2>/dev/null
}

case "${1:-}" in
  prepare) prepare ;;
  device) device ;;
  *) echo "usage: bash benchmarks/gpu_session.sh prepare|device (see the header)" >&2; exit 2 ;;
esac
