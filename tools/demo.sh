#!/usr/bin/env bash
# CPU demo: train Swin-T UperNet from scratch on the synthetic Demo Shapes set, then evaluate it (~10 min, 2 cores).
#
# Usage: bash tools/demo.sh            (PYTHON=... to choose the interpreter, WORK_DIR=... for the output folder)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
CONFIG=configs/demo/swin_t_upernet_demo.py
DATA=data/demo_shapes
WORK_DIR=${WORK_DIR:-work_dirs/demo}
start=$SECONDS

echo "==> data: $DATA"
"$PYTHON" tools/make_demo_data.py "$DATA" --exist-ok

echo "==> train: $CONFIG -> $WORK_DIR"
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
checkpoint=$(cat "$WORK_DIR/last_checkpoint")
train_time=$((SECONDS - start))

echo "==> test: $checkpoint"
mkdir -p "$WORK_DIR"
"$PYTHON" tools/test.py "$CONFIG" "$checkpoint" --work-dir "$WORK_DIR" 2>&1 | tee "$WORK_DIR/test_output.log"
result=$(grep -o 'aAcc: .*mIoU: [0-9.]*' "$WORK_DIR/test_output.log" | tail -n 1 || true)
if [[ -z "$result" ]]; then
    echo "demo: no mIoU found in $WORK_DIR/test_output.log" >&2
    exit 1
fi
echo "==> demo result (val split): $result  [train ${train_time}s, total $((SECONDS - start))s]"
