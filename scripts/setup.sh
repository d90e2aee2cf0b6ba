#!/usr/bin/env bash
# Create .venv (if needed) and install azft with everything its tests and the quickstart use.
# torch is installed first at 2.13.0: that CPU build is what the project is tested with; any other request can pull
# gigabytes of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.azft-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "${AZFT_REINSTALL:-}" = 1 ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==2.13.0"
  python -m pip install -q -e ".[train,deepspeed,onnx,test]"
  touch "$stamp"
fi
if [ "${1:-}" = "--with-test-services" ]; then
  # Azurite (the Azure Storage emulator) for the blob-upload tests, from package-lock.json
  if [ -f package.json ] && [ ! -x node_modules/.bin/azurite-blob ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
  # checkov lives in its own venv: its pins conflict with azure-ai-ml's
  if [ -f infra/tools/install-checkov.sh ] && [ ! -x .venv-checkov/bin/checkov ]; then
    bash infra/tools/install-checkov.sh
  fi
fi
