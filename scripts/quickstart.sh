#!/usr/bin/env bash
# The main job on the embedded default: fine-tune the bundled tiny-phi3 on the sample data, on this machine,
# tracked in the local MLflow store (.azft/mlflow.db). Offline; a few minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
azft validate examples/tiny-local.yaml
azft submit examples/tiny-local.yaml --backend local --wait "$@"
