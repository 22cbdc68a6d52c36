#!/usr/bin/env bash
# The CUDA path, proven in one command (<= 8 min on one GPU); benchmarks/gpu_check.py says what
# it measures and takes the same arguments.
#   bash benchmarks/gpu_check.sh                          # on a GPU machine
#   bash benchmarks/gpu_check.sh --device cpu --quick     # every step at toy size, on a CPU
# Python: $PYTHON, else .venv/bin/python, else python3. When open_clip is missing (a GPU machine
# with torch only), the wheels carried in .whl/ (benchmarks/gpu_wheels.sh) are installed into a
# temporary folder put on PYTHONPATH, never into the system.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
# find_spec looks the package up without importing it (and torch with it): a quick check.
if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('open_clip') is None)" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "error: open_clip is not importable by $PY and .whl/ holds no wheels; run bash benchmarks/gpu_wheels.sh where a package registry is reachable, and carry .whl" >&2
        exit 2
    fi
    site=$(mktemp -d /tmp/gpu_check_site.XXXXXX)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    echo "carried wheels installed into $site: $(cd .whl && ls *.whl | tr '\n' ' ')"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu_check.py "$@"
