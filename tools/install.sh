#!/usr/bin/env bash
# Install vit_backbones and its OpenMMLab stack into one Python environment.
#
# Usage: PYTHON=.venv/bin/python bash tools/install.sh [--wheelhouse DIR]
#
# Steps (each skipped when already satisfied, so a re-run takes seconds):
#   1. torch==2.14.1, torchvision==0.29.1
#   2. build tools: setuptools>=77.0.3 (torch's floor) and <81, which still
#      has pkg_resources: mmengine needs it to resolve `mmseg::` configs and
#      mmcv's setup.py imports it. Installing torch may pull a newer one.
#   3. mmcv 2.1.0 with compiled ops: from a wheelhouse whose SHA256SUMS check
#      passes, else built from the PyPI sdist (~17 min on 2 cores)
#   4. this repo in editable mode with its tests extra (pytest, onnx, ruff, ...)
#   5. import check: mmcv.ops, mmdet, mmseg, mmpretrain, timm, vit_backbones
#
# Env: PYTHON (python), WHEELHOUSE (default ../shared/wheels beside the repo,
#      if present), MAX_JOBS (2) for the mmcv build.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python}
WHEELHOUSE=${WHEELHOUSE:-}
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0

while [[ $# -gt 0 ]]; do
    case $1 in
        --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a directory}; shift 2 ;;
        --wheelhouse=*) WHEELHOUSE=${1#*=}; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [[ -z $WHEELHOUSE && -d $REPO/../shared/wheels ]]; then
    WHEELHOUSE=$REPO/../shared/wheels
fi
if [[ -n $WHEELHOUSE ]]; then
    if [[ -d $WHEELHOUSE ]]; then
        WHEELHOUSE=$(cd "$WHEELHOUSE" && pwd)  # absolute: steps cd
    else
        echo "install.sh: wheelhouse '$WHEELHOUSE' (from --wheelhouse or WHEELHOUSE) is not a directory;" \
            "expected a folder holding mmcv-$MMCV_VERSION-*.whl and SHA256SUMS (unset it to build mmcv from source)" >&2
        exit 2
    fi
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
step() { echo; echo "==> [install] $*"; }
pip_install() { "$PY" -m pip install "$@"; }
py_ok() { "$PY" -c "$1" >/dev/null 2>&1; }

if ! command -v "$PY" >/dev/null 2>&1; then
    echo "install.sh: Python interpreter '$PY' not found (set PYTHON)." >&2
    exit 1
fi
PY=$("$PY" -c 'import sys; print(sys.executable)')  # absolute: steps cd
step "python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"
py_ok 'import sys; assert sys.version_info >= (3, 10)' || {
    echo "install.sh: Python >= 3.10 is required." >&2; exit 1; }

# One Python start-up checks every step and prints the names of those
# already satisfied (torch tools mmcv package imports) plus a version line.
probe() {
    "$PY" - "$REPO" "$TORCH_VERSION" "$TORCHVISION_VERSION" "$MMCV_VERSION" \
        2>/dev/null <<'PYEOF' || true
import hashlib, importlib, os, sys, warnings
import importlib.metadata as md
warnings.simplefilter('ignore')
repo, torch_v, torchvision_v, mmcv_v = sys.argv[1:]

def torch():
    import torch, torchvision
    assert torch.__version__.split('+')[0] == torch_v
    assert torchvision.__version__.split('+')[0] == torchvision_v

def tools():
    import pkg_resources, setuptools, wheel
    assert 77 <= int(setuptools.__version__.split('.')[0]) < 81

def mmcv():
    import mmcv, mmcv.ops
    assert mmcv.__version__ == mmcv_v

def package():
    from packaging.requirements import Requirement
    with open(os.path.join(repo, 'setup.py'), 'rb') as f:
        want = f'{hashlib.sha256(f.read()).hexdigest()} {repo}'
    with open(os.path.join(sys.prefix, '.vit_backbones-install')) as f:
        assert f.read().strip() == want
    import vit_backbones
    here = os.path.realpath(os.path.dirname(vit_backbones.__file__))
    assert here == os.path.realpath(os.path.join(repo, 'vit_backbones'))
    assert os.path.isdir(os.path.join(here, '.mim', 'configs'))
    for line in md.distribution('vit_backbones').requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({'extra': 'tests'}):
            assert req.specifier.contains(md.version(req.name), True), line

def imports():
    for name in ('mmcv.ops', 'mmdet', 'mmseg', 'mmpretrain', 'timm', 'vit_backbones'):
        importlib.import_module(name)
    names = ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmsegmentation', 'mmpretrain', 'timm')
    print('versions: ' + ', '.join(f'{n} {md.version(n)}' for n in names))

for check in (torch, tools, mmcv, package, imports):
    try:
        check()
        print(check.__name__)
    except Exception:
        pass
PYEOF
}
STATE=$(probe)
has() { grep -qx "$1" <<<"$STATE"; }
reprobe() { STATE=$(probe); }

step "torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
if has torch; then
    echo "already satisfied"
else
    pip_install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
    reprobe
fi

step "build tools (setuptools>=77.0.3,<81 with pkg_resources, wheel)"
if has tools; then
    echo "already satisfied"
else
    pip_install 'setuptools>=77.0.3,<81' wheel
    reprobe
fi

# Prints the verified mmcv wheel of the wheelhouse; fails if none.
verified_wheel() {
    [[ -n $WHEELHOUSE && -f $WHEELHOUSE/SHA256SUMS ]] || return 1
    local line
    line=$(grep -E "[ *]mmcv-$MMCV_VERSION-[^ ]*\.whl$" "$WHEELHOUSE/SHA256SUMS" \
        | head -n 1) || return 1
    (cd "$WHEELHOUSE" && echo "$line" | sha256sum -c --status -) || {
        echo "checksum mismatch in $WHEELHOUSE: ${line##*[ *]}" >&2; return 1; }
    echo "$WHEELHOUSE/${line##*[ *]}"
}

build_mmcv_from_source() (
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    pip_install ninja numpy
    cd "$work"
    "$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation \
        "mmcv==$MMCV_VERSION"
    tar xzf "mmcv-$MMCV_VERSION.tar.gz"
    # torch >= 2.14 headers need C++20; mmcv 2.1.0 asks for C++17.
    sed -i "s/'-std=c++17'\]/'-std=c++20']/" "mmcv-$MMCV_VERSION/setup.py"
    grep -q "'-std=c++20'" "mmcv-$MMCV_VERSION/setup.py" || {
        echo "install.sh: could not patch mmcv's setup.py for C++20" >&2
        exit 1; }
    echo "compiling mmcv ops (MAX_JOBS=${MAX_JOBS:-2}); ~17 min on 2 cores"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} pip_install --no-build-isolation \
        --force-reinstall --no-deps "./mmcv-$MMCV_VERSION"
)

step "mmcv==$MMCV_VERSION with ops"
if has mmcv; then
    echo "already satisfied"
else
    reinstall=()
    if "$PY" -m pip show -q mmcv >/dev/null 2>&1; then
        reinstall=(--force-reinstall --no-deps)  # installed but broken
    fi
    if wheel=$(verified_wheel); then
        echo "using verified wheel $wheel"
        pip_install --only-binary mmcv --find-links "$WHEELHOUSE" \
            "${reinstall[@]}" "mmcv==$MMCV_VERSION" || true
        reprobe
    else
        echo "no verified mmcv wheel in '${WHEELHOUSE:-<none>}'"
    fi
    if ! has mmcv; then
        echo "building mmcv $MMCV_VERSION from source"
        build_mmcv_from_source
        reprobe
    fi
    has mmcv || {
        echo "install.sh: mmcv $MMCV_VERSION is installed but 'import mmcv.ops' fails:" >&2
        "$PY" -c 'import mmcv.ops' >&2 || true
        exit 1; }
fi

step "vit_backbones (editable, with tests extra)"
if has package; then
    echo "already satisfied"
else
    find_links=()
    [[ -n $WHEELHOUSE ]] && find_links=(--find-links "$WHEELHOUSE")
    (cd "$REPO" && pip_install --no-build-isolation "${find_links[@]}" \
        -e ".[tests]" ftfy regex)
    echo "$(sha256sum "$REPO/setup.py" | cut -d' ' -f1) $REPO" \
        > "$("$PY" -c 'import sys; print(sys.prefix)')/.vit_backbones-install"
    reprobe
fi

step "import check"
if ! has imports; then
    echo "install.sh: FAILED: 'import mmcv.ops, mmdet, mmseg, mmpretrain, timm, vit_backbones'" \
         "does not work with $PY:" >&2
    "$PY" -c 'import mmcv.ops, mmdet, mmseg, timm, vit_backbones' >&2 || true
    exit 1
fi
has package || echo "warning: installed, but the install check still fails" >&2
echo "ok: $(grep '^versions: ' <<<"$STATE" | cut -d' ' -f2-)"
