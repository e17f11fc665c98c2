#!/usr/bin/env bash
# The GPU check (issue 7), prepared as one short script for a machine lent through the `device` tool: a bare,
# offline GPU machine whose python3 has torch, numpy, pandas, scikit-learn, matplotlib and pytest but not this
# project's other dependencies, and none of the offline data. Two halves:
#
#   bash benchmarks/gpu_session.sh prepare      # here, in the repo root: packs .gpu_carry/ (git-ignored)
#   device run: command="bash benchmarks/gpu_session.sh device", carry=[".gpu_carry"], timeout_s=420
#
# `prepare` copies the pure-Python packages the device image lacks (hydra, omegaconf, antlr4,
# pytorch_metric_learning) from this venv into .gpu_carry/site/, and Omniglot, ORL and the Fashion-MNIST IDX
# files into .gpu_carry/data/ (41 MB in all; the device tool carries at most 64 MB).
# `device` then runs, each step only while time is left (GPU_BUDGET_S, default 330 s, of which the last 60 s
# are kept for packing the results; a step that would not finish is stopped, and what ran still comes back;
# a 420 s timeout_s plus a machine start leaves time in a 15-minute lease to run it again):
#   1. the environment (nvidia-smi, torch, the GPU's name) -> $OUT/env.txt
#   2. tests/test_precision.py: the CUDA run against the CPU within tolerance, and the bf16 checks
#   3. CI-sized studies on the GPU: ci_fashion_mnist in fp32 and in bf16, ci_omniglot in fp32 (every learner)
#   4. the triplet row of benchmarks.speed on Fashion-MNIST: training images/s against a plain
#      pytorch-metric-learning loop, both on the GPU
#   5. benchmarks.throughput over the studies (fit steps/s, eval images/s, run time, span) -> $OUT/throughput.md
# The records (no model weights) -> $OUT/gpu_results.tar.gz, packed right after the steps, before the tables
# (which can be rebuilt from it: python -m benchmarks.report <study> --results results_gpu); the log ->
# $OUT/log.txt. The exit status is 1 when any step failed or was stopped.
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
  [ -d "$shared/omniglot" ] && [ -d "$shared/att_faces" ] \
    || { echo "prepare: no omniglot/ and att_faces/ under $shared: set SIMBENCH_DATA_ROOT" >&2; exit 2; }
  ls /usr/share/datasets/fashion-mnist/*-ubyte* >/dev/null 2>&1 \
    || { echo "prepare: no Fashion-MNIST in /usr/share/datasets/fashion-mnist: apt-get install -y dataset-fashion-mnist" >&2; exit 2; }
  cp -r "$shared/omniglot" "$shared/att_faces" "$CARRY/data/"
  cp /usr/share/datasets/fashion-mnist/*-ubyte* "$CARRY/data/FashionMNIST/raw/"
  du -sh "$CARRY"
}

device() {
  local out="${OUT:-/tmp/gpu_out}" budget="${GPU_BUDGET_S:-330}" dev="${GPU_DEVICE:-cuda}" start results log failed=0
  case "$budget" in ''|*[!0-9]*) echo "GPU_BUDGET_S must be a whole number of seconds, got '$budget'" >&2; return 2 ;; esac
  budget=$(( budget - 60 ))  # the last 60 s: packing the records, the tables and the throughput table
  start=$(date +%s); results="$PWD/results_gpu"; log="$out/log.txt"
  mkdir -p "$out" "$results"
  export PYTHONPATH="$PWD/$CARRY/site:$PWD" SIMBENCH_DATA_ROOT="$PWD/$CARRY/data" PYTHONUNBUFFERED=1
  left() { echo $(( budget - ($(date +%s) - start) )); }
  step() {  # step NAME SECONDS_NEEDED COMMAND...: run it if that much time is left, within the time left
    local name=$1 need=$2; shift 2
    if [ "$(left)" -lt "$need" ]; then echo "== $name: skipped, $(left) s left" | tee -a "$log"; failed=1; return; fi
    echo "== $name ($(left) s left)" | tee -a "$log"
    local t0=$(date +%s)
    timeout "$(left)" "$@" >> "$log" 2>&1; local rc=$?
    echo "== $name: exit $rc in $(( $(date +%s) - t0 )) s" | tee -a "$log"
    [ "$rc" -eq 0 ] || failed=1
  }
  { nvidia-smi -L; python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')"; nproc; } > "$out/env.txt" 2>&1
  cat "$out/env.txt" | tee -a "$log"
  local quiet="hydra/job_logging=none hydra/hydra_logging=none results_dir=$results device=$dev"
  step "precision tests" 60 python3 -m pytest -q -n 0 -p no:cacheprovider tests/test_precision.py
  step "ci_fashion_mnist fp32" 60 python3 -m benchmarks.run -m experiment=ci_fashion_mnist $quiet
  step "ci_fashion_mnist bf16" 60 python3 -m benchmarks.run -m experiment=ci_fashion_mnist precision=bf16 study=ci_fashion_mnist_bf16 $quiet
  step "ci_omniglot fp32" 90 python3 -m benchmarks.run -m experiment=ci_omniglot $quiet
  step "speed: triplet images/s" 40 python3 -m benchmarks.speed --only triplet --dataset fashion_mnist --device "$dev" --repeats 3 --out "$results/speed/speed.csv"
  tar -czf "$out/gpu_results.tar.gz" --exclude='*.pt' --exclude=results_gpu/fits -C "$PWD" results_gpu \
    || { echo "gpu_session: packing the records failed" | tee -a "$log"; failed=1; }
  local studies="" s
  for s in ci_fashion_mnist ci_fashion_mnist_bf16 ci_omniglot; do [ -d "$results/runs/$s" ] && studies="$studies $s"; done
  for s in $studies; do timeout 25 python3 -m benchmarks.report "$s" --results "$results" >> "$log" 2>&1; done
  # studies with no ok record (a step stopped before its first run ended) are named and left out
  [ -n "$studies" ] && timeout 20 python3 -m benchmarks.throughput $studies --results "$results" --out "$out/throughput.md" >> "$log" 2>&1
  echo "gpu_session: done in $(( $(date +%s) - start )) s; $([ "$failed" -eq 0 ] && echo 'every step passed' || echo 'a step failed or was skipped: see log.txt')" | tee -a "$log"
  return "$failed"
}

case "${1:-}" in
  prepare) prepare ;;
  device) device ;;
  *) echo "usage: bash benchmarks/gpu_session.sh prepare|device (see the header)" >&2; exit 2 ;;
esac
