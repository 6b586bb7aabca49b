#!/usr/bin/env bash
# The GPU check in one prepared command, for a lent GPU machine that has torch but neither Ray
# nor network (README "GPU check on a lent machine"). Run from the repository root:
#
#   bash ops/gpu_check.sh            # phase 1: throughput table, then the suite
#   RESUME=1 bash ops/gpu_check.sh   # phase 2, on the same warm machine: the rest
#
# 1. installs the carried wheels (.whl/: pydantic and its three dependencies) and pe-bench
#    itself into $SITE (no network, no build isolation);
# 2. perf/throughput.py on the GPU: SimCLR and MoCo x ResNet18 / ViT / small CNN,
#    batch 512, against per-sample DataLoaders with $WORKERS workers, GPU memory and the
#    GPU- vs input-bound verdict (phase 1 only);
# 3. suites/gpu-check.yaml through `pe-bench run --in-process` (no Ray) into $STORE, stopped
#    after $SUITE_SECONDS; rows written before the stop stay, and phase 2 resumes them.
# Everything worth keeping is copied to $OUT (the device tool brings it back).
# Every knob is an environment variable, so the same script runs a tiny CPU rehearsal here:
#   PY=.venv/bin/python SITE= DEVICE=cpu TP_ARGS="--backbones small-cnn --width 4 --steps 1
#   --batch-size 16 --dataset random --resolution 8" SUITE=suites/smoke.yaml OUT=/tmp/out \
#   DATA=../shared/data bash ops/gpu_check.sh
set -uo pipefail
PY=${PY:-python3}
OUT=${OUT:-/tmp/pe-bench-device-out}
SITE=${SITE-/tmp/pe-site}
STORE=${STORE:-/tmp/pe-bench-store}
DATA=${DATA:-.device/data}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-8}
SUITE=${SUITE:-suites/gpu-check.yaml}
SUITE_SECONDS=${SUITE_SECONDS:-300}
TP_ARGS=${TP_ARGS:---encoders simclr,moco --backbones resnet18,vit-tiny,small-cnn --steps 20}
export PYTHONUNBUFFERED=1 PE_BENCH_CACHE=${PE_BENCH_CACHE:-/tmp/pe-bench-decode}
mkdir -p "$OUT" "$STORE"

if [ -n "$SITE" ]; then
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl || exit 1
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --ignore-requires-python \
        --target "$SITE" . || exit 1
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c "import pe_bench, torch; print('pe-bench on torch', torch.__version__,
          'cuda', torch.cuda.is_available())" | tee "$OUT/environment.txt" || exit 1
command -v nvidia-smi >/dev/null && nvidia-smi >>"$OUT/environment.txt"

if [ -z "${RESUME:-}" ]; then
    # shellcheck disable=SC2086  # TP_ARGS is a list of arguments
    "$PY" perf/throughput.py --device "$DEVICE" $TP_ARGS --reference v1 v2 \
        --num-workers "$WORKERS" --out "$OUT/throughput.json" 2>&1 | tee "$OUT/throughput.txt"
fi

timeout --signal=INT "$SUITE_SECONDS" "$PY" -m pe_bench.cli run "$SUITE" --in-process \
    --data-dir "$DATA" --store "$STORE" --resume --no-leaderboard 2>&1 | tee -a "$OUT/suite.txt"
echo "suite exit status ${PIPESTATUS[0]} (124: stopped after ${SUITE_SECONDS} s; run again with RESUME=1)" \
    | tee -a "$OUT/suite.txt"
"$PY" -m pe_bench.cli leaderboard --store "$STORE" --format md --out "$OUT/leaderboard.md"
mkdir -p "$OUT/store" && cp -r "$STORE"/suite=* "$OUT/store/"  # rows only: cached encoders stay
