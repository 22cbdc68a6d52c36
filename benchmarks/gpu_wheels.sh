#!/usr/bin/env bash
# Download into .whl/ the wheels that the GPU machine lacks, for benchmarks/gpu_check.sh to
# install into a temporary folder there. Run it here (a package registry is reachable); the GPU
# machine has no network. .whl/ is git-ignored; name it in the device run's `carry`.
#
# The GPU machine (one H200: Python 3.12, torch 2.11 + CUDA 13, torchvision 0.26) already has
# numpy, scipy, pillow, pyyaml, safetensors, regex, tqdm, timm, huggingface_hub, scikit-learn,
# matplotlib, transformers and pytest. open_clip_torch needs ftfy and regex, tqdm, timm,
# huggingface_hub, safetensors, torch, torchvision; ftfy needs wcwidth. So three pure-Python
# wheels are missing, pinned to the versions this suite is tested with. --no-deps: pip must
# not pull torch or anything else the machine has.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=(open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4)
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"
# One version of each: two would stop the install there.
for name in open_clip_torch ftfy wcwidth; do
    count=$(ls .whl | grep -ci "^${name}-" || true)
    if [ "$count" != 1 ]; then
        echo "error: .whl/ holds $count wheels of $name; keep exactly one (delete the others) and re-run" >&2
        exit 2
    fi
done
ls -l .whl
du -sh .whl
