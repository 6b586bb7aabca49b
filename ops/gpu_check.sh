#!/usr/bin/env bash
# The GPU check as ONE prepared command for a lent single-GPU machine that has torch but neither
# Ray, pydantic nor network (docs/performance.md "GPU check on a lent machine"). Prepare here with
# ops/prepare_gpu_check.sh, then make one call of the device tool:
#
#   run(command="bash ops/gpu_check.sh", timeout_s=600, carry=[".whl",
#       ".device/data/cifar10/train-00000-of-00001.parquet",
#       ".device/data/cifar10/test-00000-of-00001.parquet"])
#
# Steps, each passed the data directory $DATA where it reads data, each one's exit status and
# seconds written to $OUT/status.txt as it ends; the first failure stops the work (set -e) and the
# last two steps run whatever happened, so what finished comes back:
#   install      the carried wheels (.whl/: pydantic and its 3 dependencies) and pe-bench into $SITE
#   environment  python, torch, pe-bench, the GPU (fails at once if DEVICE=cuda finds no CUDA)
#   data         `pe-bench validate` of the suite against $DATA (every split located, not decoded)
#   throughput   perf/throughput.py --data-dir $DATA: SimCLR and MoCo x ResNet18, batch 512, vs
#                per-sample DataLoaders (v1, v2) with $WORKERS workers; JSON rewritten after each
#                configuration; any failed configuration fails the step
#   suite        suites/gpu-check.yaml via `pe-bench run --in-process --resume` (no Ray); rows land
#                in $STORE as each trial ends; stopped (SIGINT) at the budget's deadline
#   board        the leaderboard (md, with PE vs `duplicate`) of whatever rows came before
#   rows         $STORE without its encoder cache (_cache) as rows.tgz
# $OUT then holds 7 files, no folder, names of [A-Za-z0-9._-] (a lent machine returns at most 8
# files, 2 folders deep): status.txt log.txt environment.txt throughput.json throughput.txt
# leaderboard.md rows.tgz. The exit status is 0 only if every step succeeded.
#
# Time: everything within BUDGET=540 s (the tool's limit is 600 s per command; the machine's
# start, ~1-2 min, is outside it but inside the 15 min of device time a task gets). ASSUMED,
# not measured (no GPU has been lent to this project yet): ResNet18 SimCLR at 32x32, batch 512,
# bf16 + channels_last on an H100 trains ~5,000 img/s (one image = two views); MoCo ~1.5x dearer.
#   install + environment + data             ~25 s
#   throughput: per configuration 512 x (2 x 13 steps pe-bench and model-only + 2 references x
#     (3 warm-up + 2 x 8 prefetched + 10 timed)) = 43k images, ~9 s at 5k img/s, ~25 s with the
#     references input-bound and MoCo; 2 configurations                  ~50 s (capped at 120 s)
#   suite (suites/gpu-check.yaml's own counts): 4 pre-trainings x 30 epochs of 8,000 (clean twin),
#     8,800 (poisoned-encoder, 10%), 8,800 (duplicate, 10%), 8,080 (ctrl, 1%) images
#     = 33,680 x 30 = 1.01 M images / 5,000 img/s = 202 s, + 4 trials x ~15 s (data, attack,
#     2 x 8,000 + 2,000 encoded, 2 linear probes, cache)                  ~260 s
#   board + rows                                                            ~10 s
#   total ~345 s: the 540 s budget holds down to ~3,000 img/s. Slower than that, the suite is
#   stopped at the deadline (540 s less RESERVE=30 s for board and rows), its finished trials kept,
#   and status.txt says so (rc=124). Run again on the same warm machine and --resume skips the
#   finished trials ($STORE stays in /tmp there).
#
# Every knob is an environment variable. REHEARSAL=1 sets toy-scale defaults for a CPU rehearsal
# of the same steps (every image-only encoder in throughput.py, the suite's 4 trials on 160 tiny
# images with a small CNN); tests/unit/cli/test_gpu_check.py runs it:
#   REHEARSAL=1 PY=.venv/bin/python OUT=/tmp/out STORE=/tmp/store DATA=../shared/data \
#       bash ops/gpu_check.sh
set -euo pipefail
START=$SECONDS
if [ -n "${REHEARSAL:-}" ]; then  # toy scale on CPU, valid for every encoder (MoCo's queue
    # needs more images than one batch: 2 timed steps and no warm-up call)
    SITE=${SITE-} DEVICE=${DEVICE:-cpu} WORKERS=${WORKERS:-0} BUDGET=${BUDGET:-300}
    tiny='--backbones small-cnn --width 4 --resolution 8 --batch-size 16 --steps 2 --warmup 0'
    TP_ARGS=${TP_ARGS:-$tiny --reference v1 v2 --threads 1}
    toy='resources={cpu: 1, gpu: 0}
train.epochs=1
train.batch_size=32
train.warmup_epochs=0
evaluation.batch_size=256
datasets.0.pretrain.max_images=200
datasets.0.tasks.0.train_size=200
datasets.0.tasks.0.test_size=60
encoders.0.params={backbone: small-cnn, width: 8, proj_hidden_dim: 32, proj_dim: 16}'
    SUITE_SET=${SUITE_SET-$toy}
fi
PY=${PY:-python3}
OUT=${OUT:-/tmp/pe-bench-device-out}
SITE=${SITE-/tmp/pe-site}
STORE=${STORE:-/tmp/pe-bench-store}
DATA=${DATA:-.device/data}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-8}
SUITE=${SUITE:-suites/gpu-check.yaml}
SUITE_SET=${SUITE_SET:-}  # extra `--set KEY.PATH=VALUE` overrides of the suite, one per line
BUDGET=${BUDGET:-540}     # seconds for the whole script
RESERVE=${RESERVE:-30}    # kept from the suite's deadline for board and rows
TP_SECONDS=${TP_SECONDS:-120}
TP_ARGS=${TP_ARGS:---encoders simclr,moco --backbones resnet18 --steps 10 --warmup 3 --reference v1 v2}
export PYTHONUNBUFFERED=1 PE_BENCH_CACHE=${PE_BENCH_CACHE:-/tmp/pe-bench-decode}
STATUS=$OUT/status.txt
LOG=$OUT/log.txt
FAILED=""
mkdir -p "$OUT" "$STORE"
: >"$STATUS"
: >"$LOG"
sets=(--set "train.device=$DEVICE")  # the device the suite trains on is this script's DEVICE
while IFS= read -r item; do
    if [ -n "$item" ]; then sets+=(--set "$item"); fi
done <<<"$SUITE_SET"

step() {  # step NAME FILE COMMAND...: run it, output to the log (and FILE), exit status to status.txt
    local name=$1 file=$2 began=$SECONDS rc=0 note=""
    shift 2
    if [ -n "$file" ]; then : >"$file"; fi
    echo "== $name (at $((SECONDS - START)) s): $*" | tee -a "$LOG"
    "$@" 2>&1 | tee -a "$LOG" ${file:+"$file"} || rc=$?
    if [ "$rc" -eq 124 ]; then note=" (stopped at its time limit)"; fi
    printf '%-12s rc=%-3s %4s s%s\n' "$name" "$rc" $((SECONDS - began)) "$note" | tee -a "$STATUS"
    if [ "$rc" -ne 0 ] && [ -z "$FAILED" ]; then FAILED="$name rc=$rc$note"; fi
    return "$rc"
}

limit() {  # seconds the next step may run: at most $1, and within the budget less the reserve
    local left=$((BUDGET - (SECONDS - START) - RESERVE))
    if [ "$left" -gt "$1" ]; then left=$1; fi
    if [ "$left" -lt 1 ]; then left=1; fi  # `timeout 0` would mean no limit at all
    echo "$left"
}

install_site() {
    if [ -z "$SITE" ]; then echo "SITE is empty: $PY's own packages"; return 0; fi
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl || return
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --ignore-requires-python \
        --target "$SITE" . || return
}

environment() {
    "$PY" - "$DEVICE" <<'EOF' || return
import sys
import torch
import pe_bench
cuda = torch.cuda.is_available()
print("python", sys.version.split()[0], "| torch", torch.__version__, "| pe-bench from",
      pe_bench.__file__, "| cuda", cuda, torch.cuda.get_device_name(0) if cuda else "")
if sys.argv[1] == "cuda" and not cuda:
    sys.exit("DEVICE=cuda but torch finds no CUDA device")
EOF
    echo "budget $BUDGET s; device $DEVICE; data $DATA; suite $SUITE ${sets[*]}"
    if command -v nvidia-smi >/dev/null; then nvidia-smi || true; fi
}

board() {  # the board with PE vs duplicate; without the duplicate line (a run cut short), plain
    "$PY" -m pe_bench.cli leaderboard --store "$STORE" --format md --versus duplicate \
        --out "$OUT/leaderboard.md" \
        || "$PY" -m pe_bench.cli leaderboard --store "$STORE" --format md --out "$OUT/leaderboard.md"
}

finish() {  # on every exit: board and rows from whatever finished, then the verdict
    local rc=$?
    set +e
    trap - EXIT
    if [ "$rc" -ne 0 ] && [ -z "$FAILED" ]; then FAILED="script rc=$rc"; fi
    step board "" board
    step rows "" tar -czf "$OUT/rows.tgz" -C "$STORE" --exclude=./_cache .
    rm -f "$OUT"/.*.tmp  # a JSON write cut short by a kill
    if [ -z "$FAILED" ]; then
        echo "result: ok in $((SECONDS - START)) s (budget $BUDGET s)" | tee -a "$STATUS"
        exit 0
    fi
    echo "result: FAILED at $FAILED, $((SECONDS - START)) s (budget $BUDGET s)" | tee -a "$STATUS"
    exit 1
}
trap finish EXIT
trap 'exit 130' INT TERM  # interrupted: still through finish

step install "" install_site
if [ -n "$SITE" ]; then export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"; fi
step environment "$OUT/environment.txt" environment
step data "" "$PY" -m pe_bench.cli validate "$SUITE" --data-dir "$DATA" "${sets[@]}"
# shellcheck disable=SC2086  # TP_ARGS is a list of arguments
step throughput "$OUT/throughput.txt" timeout -k 10 "$(limit "$TP_SECONDS")" \
    "$PY" perf/throughput.py --device "$DEVICE" --data-dir "$DATA" --num-workers "$WORKERS" \
    $TP_ARGS --out "$OUT/throughput.json"
step suite "" timeout --signal=INT -k 15 "$(limit "$BUDGET")" \
    "$PY" -m pe_bench.cli run "$SUITE" --in-process --data-dir "$DATA" --store "$STORE" --resume \
    --no-leaderboard "${sets[@]}"
