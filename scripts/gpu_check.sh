#!/usr/bin/env bash
# The GPU check in one go (scripts/gpu_check.py says what it measures and writes).
#
#   bash scripts/gpu_check.sh run [--budget 540] [--data DIR] [--out FILE] [--smoke] [--parts ...]
#   bash scripts/gpu_check.sh prepare [--carry .gpu_carry] [--data ../shared/data]   # here, before
#   bash scripts/gpu_check.sh stash [--carry .gpu_carry]                             # there, between calls
#
# The budget counts from here, setup included. The Python used is $PYTHON, else the repository's
# .venv, else the python3 on the PATH that can import torch (on the lent GPU machines, the image's
# own). Nothing is installed: the source goes on PYTHONPATH, and what the machine lacks comes
# from the carry folder that `prepare` lays out.
set -euo pipefail
export GPU_CHECK_START="${GPU_CHECK_START:-$(date +%s.%N)}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pick_python() {
    local candidate
    for candidate in "${PYTHON:-}" "$repo/.venv/bin/python" python3 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch" >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    echo "gpu_check: no Python that can import torch (set PYTHON=...)" >&2
    return 1
}
python="$(pick_python)"
export PYTHONUNBUFFERED=1
cd "$repo"
exec "$python" "$repo/scripts/gpu_check.py" "$@"
