#!/usr/bin/env bash
# Run the whole test suite (installs what it needs on first use). Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-test-services || exit 1
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Two workers (pytest-xdist), each taking whole test files: many tests wait on subprocesses and local servers, so two
# processes finish well before one even on two cores. AZFT_TEST_WORKERS sets the count; `-n ...` or `-p no:xdist`
# among the arguments replaces this (`-n 0` or `-p no:xdist`: a single process).
workers=(-n "${AZFT_TEST_WORKERS:-2}" --dist loadfile)
for arg in "$@"; do
  case "$arg" in
    -n | -n* | --numprocesses | --numprocesses=* | *no:xdist) workers=() ;;
  esac
done
python -m pytest "${workers[@]}" "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit $rc
