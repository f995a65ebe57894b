#!/usr/bin/env bash
# CPU detection demo: train PVTv2-b0 Mask R-CNN from scratch on the synthetic Demo Shapes COCO set, then evaluate
# it (box and mask mAP, COCO metric) (~13 min, 2 cores).
#
# Usage: bash tools/demo_det.sh        (PYTHON=... to choose the interpreter, WORK_DIR=... for the output folder)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
CONFIG=configs/demo/mask-rcnn_pvtv2-b0_demo.py
DATA=data/demo_coco
WORK_DIR=${WORK_DIR:-work_dirs/demo_det}
start=$SECONDS

echo "==> data: $DATA"
"$PYTHON" tools/make_demo_data.py "$DATA" --kind det --exist-ok

echo "==> train: $CONFIG -> $WORK_DIR"
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
checkpoint=$(cat "$WORK_DIR/last_checkpoint")
train_time=$((SECONDS - start))

echo "==> test: $checkpoint"
mkdir -p "$WORK_DIR"
"$PYTHON" tools/test.py "$CONFIG" "$checkpoint" --work-dir "$WORK_DIR" 2>&1 | tee "$WORK_DIR/test_output.log"
bbox=$(grep -o 'coco/bbox_mAP: [0-9.]*' "$WORK_DIR/test_output.log" | tail -n 1 || true)
segm=$(grep -o 'coco/segm_mAP: [0-9.]*' "$WORK_DIR/test_output.log" | tail -n 1 || true)
if [[ -z "$bbox" || -z "$segm" ]]; then
    echo "demo_det: no bbox/segm mAP found in $WORK_DIR/test_output.log" >&2
    exit 1
fi
echo "==> demo result (val split): $bbox  $segm  [train ${train_time}s, total $((SECONDS - start))s]"
