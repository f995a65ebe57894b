#!/usr/bin/env bash
# CPU demo: train Swin-T UperNet from scratch on the synthetic Demo Shapes set, then evaluate it (~10 min, 2 cores).
# Another segmentation demo config (Shuffle-T, CvT-13 UperNet) runs the same way when given as the argument.
#
# Usage: bash tools/demo.sh [CONFIG]   (PYTHON=... to choose the interpreter, WORK_DIR=... for the output folder)
#
# CONFIG is a segmentation demo config on the Demo Shapes set (default configs/demo/swin_t_upernet_demo.py, whose
# WORK_DIR default is work_dirs/demo); for another config WORK_DIR defaults to work_dirs/<config name>, e.g.
#   bash tools/demo.sh configs/demo/cvt13_upernet_demo.py      # -> work_dirs/cvt13_upernet_demo
set -euo pipefail

DEFAULT_CONFIG=configs/demo/swin_t_upernet_demo.py
if (($# > 1)); then
    echo "usage: bash tools/demo.sh [CONFIG]  (default: $DEFAULT_CONFIG)" >&2
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
    echo "demo: no config file $CONFIG" >&2
    exit 2
fi
if [[ "$CONFIG" -ef "$DEFAULT_CONFIG" ]]; then
    default_work_dir=work_dirs/demo
else
    name=$(basename "$CONFIG")
    default_work_dir=work_dirs/${name%.py}
fi
DATA=data/demo_shapes
WORK_DIR=${WORK_DIR:-$default_work_dir}
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
