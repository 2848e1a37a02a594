#!/usr/bin/env bash
# GPU throughput: train and predict images/s through the real pipeline (packed cache,
# augmentations) against pure compute, for resnet34 and densenet121 at 512 px.
# One command, a few minutes on one GPU; extra arguments go to benchmarks/gpu.py
# (e.g. --compile, --models resnet34, --work DIR to keep the data between runs).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python}"
if [ -x "$here/../.venv/bin/python" ] && [ -z "${PYTHON:-}" ]; then
    python="$here/../.venv/bin/python"
fi
if ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "benchmarks/gpu.sh: no CUDA device here: nothing measured (python benchmarks/gpu.py --dry-run checks the code on a CPU)"
    exit 0
fi
exec timeout 480 "$python" "$here/gpu.py" "$@"
