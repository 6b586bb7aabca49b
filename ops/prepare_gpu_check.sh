#!/usr/bin/env bash
# Prepares, on this machine, what ops/gpu_check.sh needs on a lent GPU machine that
# has torch but no Ray, no pydantic and no network (docs/performance.md "GPU check on a lent
# machine"):
#   .whl/          pydantic and its dependencies as CPython 3.12 manylinux wheels, the versions
#                  this checkout's .venv uses (pip download needs a package registry)
#   .device/data   a link to the datasets folder (default ../shared/data), read in place: the
#                  device tool carries the files named through it, nothing is copied
# Both are git-ignored through .git/info/exclude. Run from the repository root.
set -euo pipefail
DATA=${1:-../shared/data}
PY=${PY:-.venv/bin/python}
for entry in /.whl/ /.device/; do
    grep -qxF "$entry" .git/info/exclude 2>/dev/null || echo "$entry" >>.git/info/exclude
done
mkdir -p .device .whl
ln -sfn "$(cd "$DATA" && pwd)" .device/data
pins=$("$PY" -m pip list --format=freeze 2>/dev/null \
       | grep -iE '^(pydantic|pydantic[-_]core|annotated[-_]types|typing[-_]inspection)==')
# shellcheck disable=SC2086  # one argument per pin
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $pins
echo "wheels: $(ls .whl | tr '\n' ' ')"
echo "then ONE device call: command \"bash ops/gpu_check.sh\", timeout_s 600, carry: .whl" \
     ".device/data/cifar10/train-00000-of-00001.parquet .device/data/cifar10/test-00000-of-00001.parquet"
du -shL .whl .device/data/cifar10
