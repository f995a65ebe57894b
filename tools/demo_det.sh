#!/usr/bin/env bash
# CPU detection demo: train PVTv2-b0 Mask R-CNN from scratch on the synthetic Demo Shapes COCO set, then evaluate
# it (box and mask mAP, COCO metric) (~13 min, 2 cores). Another detection demo config (the ViTDet ViT-Tiny Mask
# R-CNN) runs the same way when given as the argument.
#
# Usage: bash tools/demo_det.sh [CONFIG]   (PYTHON=... to choose the interpreter, WORK_DIR=... for the output folder)
#
# CONFIG is a detection demo config on the Demo Shapes COCO set (default configs/demo/mask-rcnn_pvtv2-b0_demo.py,
# whose WORK_DIR default is work_dirs/demo_det); for another config WORK_DIR defaults to work_dirs/<config name>, e.g.
#   bash tools/demo_det.sh configs/demo/mask-rcnn_vit-t-vitdet_demo.py   # -> work_dirs/mask-rcnn_vit-t-vitdet_demo
set -euo pipefail

DEFAULT_CONFIG=configs/demo/mask-rcnn_pvtv2-b0_demo.py
if (($# > 1)); then
    echo "usage: bash tools/demo_det.sh [CONFIG]  (default: $DEFAULT_CONFIG)" >&2
    exit 2
fi
config_arg=${1:-}
if [[ -n "$config_arg" && "$config_arg" != /* && -e "$config_arg" ]]; then
    config_arg="$PWD/$config_arg"  # relative to where the script was called from
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
CONFIG=${config_arg:-$DEFAULT_CONFIG}
CONFIG=${CONFIG#"$PWD/"}  # inside the checkout: shown and passed on relative to it
if [[ ! -f "$CONFIG" ]]; then
    echo "demo_det: no config file $CONFIG" >&2
    exit 2
fi
if [[ "$CONFIG" -ef "$DEFAULT_CONFIG" ]]; then
    default_work_dir=work_dirs/demo_det
else
    name=$(basename "$CONFIG")
    default_work_dir=work_dirs/${name%.py}
fi
DATA=data/demo_coco
WORK_DIR=${WORK_DIR:-$default_work_dir}
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
