#!/usr/bin/env bash
# Prove `cnnspec train` on a GPU in one short call (about 5 minutes); docs/train.md, "GPU".
#
#   bash bench/gpu_check.sh --out DIR               # on the GPU machine; report in DIR
#   bash bench/gpu_check.sh --device cpu --quick    # the CPU smoke test (tests/train/test_gpu_check.py)
#
# Runs from the source tree, nothing installed: what the machine lacks of cnnspec's
# dependencies comes from build/gpu-wheels (`make gpu-wheels` on a machine with network;
# carry that folder along). PYTHON picks the interpreter (default: python3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
exec "${PYTHON:-python3}" bench/gpu_check.py "$@"
