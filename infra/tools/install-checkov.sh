#!/usr/bin/env bash
# Create the isolated virtualenv that holds checkov, the infrastructure-as-code scanner used by
# tests/assets/test_infra.py and by `bash infra/tools/scan.sh`.
#
# checkov pins older releases of packages the project itself uses (packaging, networkx, pycep-parser,
# cachetools, platformdirs, importlib_metadata), so installing it into the project's .venv would downgrade
# them. It lives in its own venv instead; the tests find it at $AZFT_CHECKOV or <repo>/.venv-checkov/bin/checkov.
#
# Usage: bash infra/tools/install-checkov.sh            # creates <repo>/.venv-checkov (idempotent)
#        AZFT_CHECKOV_VENV=/some/dir bash infra/tools/install-checkov.sh
set -euo pipefail

CHECKOV_VERSION="3.3.30"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${AZFT_CHECKOV_VENV:-$repo/.venv-checkov}"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/checkov" ] && "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  echo "checkov $CHECKOV_VERSION already installed in $venv"
  exit 0
fi

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
echo "installed checkov $("$venv/bin/checkov" --version) in $venv"
