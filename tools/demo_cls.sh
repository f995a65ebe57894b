#!/usr/bin/env bash
# CPU demo: train Swin-T as an mmpretrain image classifier from scratch on the synthetic Demo Shapes classification
# set, then evaluate it (~10 min, 2 cores). With --seg it goes on to the segmentation demo with its backbone
# initialised from that classifier (configs/demo/swin_t_upernet_cls-init_demo.py, another ~10 min), to compare
# with the from-scratch segmentation demo (bash tools/demo.sh).
#
# Usage: bash tools/demo_cls.sh [--seg]
#   PYTHON=...        the interpreter (default .venv/bin/python, else python)
#   WORK_DIR=...      the classifier's output folder (default work_dirs/demo_cls)
#   SEG_WORK_DIR=...  the initialised segmentation demo's output folder (default work_dirs/demo_cls_init)
set -euo pipefail

usage="usage: bash tools/demo_cls.sh [--seg]"
seg=0
if (($# > 1)); then
    echo "$usage" >&2
    exit 2
elif (($# == 1)); then
    if [[ "$1" != --seg ]]; then
        echo "$usage" >&2
        exit 2
    fi
    seg=1
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
CONFIG=configs/demo/swin_t_cls_demo.py
SEG_CONFIG=configs/demo/swin_t_upernet_cls-init_demo.py
DATA=data/demo_cls
WORK_DIR=${WORK_DIR:-work_dirs/demo_cls}
SEG_WORK_DIR=${SEG_WORK_DIR:-work_dirs/demo_cls_init}
start=$SECONDS

echo "==> data: $DATA"
"$PYTHON" tools/make_demo_data.py "$DATA" --kind cls --exist-ok

echo "==> train: $CONFIG -> $WORK_DIR"
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
checkpoint=$(cat "$WORK_DIR/last_checkpoint")
train_time=$((SECONDS - start))

echo "==> test: $checkpoint"
mkdir -p "$WORK_DIR"
"$PYTHON" tools/test.py "$CONFIG" "$checkpoint" --work-dir "$WORK_DIR" 2>&1 | tee "$WORK_DIR/test_output.log"
result=$(grep -o 'accuracy/top1: [0-9.]*' "$WORK_DIR/test_output.log" | tail -n 1 || true)
if [[ -z "$result" ]]; then
    echo "demo: no accuracy/top1 found in $WORK_DIR/test_output.log" >&2
    exit 1
fi
cls_line="==> demo result (val split): $result  [train ${train_time}s, total $((SECONDS - start))s]"
echo "$cls_line"
if ((seg == 0)); then
    exit 0
fi

seg_start=$SECONDS
echo "==> data: data/demo_shapes"
"$PYTHON" tools/make_demo_data.py data/demo_shapes --exist-ok

echo "==> train: $SEG_CONFIG (backbone from $checkpoint) -> $SEG_WORK_DIR"
init="model.backbone.init_cfg.checkpoint=$checkpoint"
"$PYTHON" tools/train.py "$SEG_CONFIG" --work-dir "$SEG_WORK_DIR" --cfg-options "$init"
seg_checkpoint=$(cat "$SEG_WORK_DIR/last_checkpoint")
seg_train_time=$((SECONDS - seg_start))

echo "==> test: $seg_checkpoint"
"$PYTHON" tools/test.py "$SEG_CONFIG" "$seg_checkpoint" --work-dir "$SEG_WORK_DIR" 2>&1 \
    | tee "$SEG_WORK_DIR/test_output.log"
seg_result=$(grep -o 'aAcc: .*mIoU: [0-9.]*' "$SEG_WORK_DIR/test_output.log" | tail -n 1 || true)
if [[ -z "$seg_result" ]]; then
    echo "demo: no mIoU found in $SEG_WORK_DIR/test_output.log" >&2
    exit 1
fi
echo "$cls_line"
seg_times="train ${seg_train_time}s, total $((SECONDS - seg_start))s"
echo "==> demo result, segmentation initialised from the classifier (val split): $seg_result  [$seg_times]"
