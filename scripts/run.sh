#!/usr/bin/env bash
# One entry point for a fresh machine. Idempotent: it creates .venv and installs only what is missing.
#   bash scripts/run.sh quickstart [siri quickstart options]   set up, then run the SIRI quickstart
#   bash scripts/run.sh test [pytest options]                  set up (with the real ALFWorld engine), lint, test
#   bash scripts/run.sh setup                                  set up only
set -euo pipefail
cd "$(dirname "$0")/.."
job="${1:-quickstart}"; shift || true

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
pip_install() { .venv/bin/python -m pip install --disable-pip-version-check -q "$@"; }

# Reinstall when pyproject.toml changes. torch is pinned to the CPU build that pip finds on local disk.
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing siri-rl and its dependencies into .venv"
  pip_install -e ".[dev]"
  rm -f .venv/.installed-*; touch "$stamp"
fi

case "$job" in
  setup) echo "[setup] done: .venv/bin/siri --help" ;;
  quickstart) exec .venv/bin/siri quickstart "$@" ;;
  test)
    # The real ALFWorld engine for the parity tests: compiles once (~4 min), pip caches the wheels.
    if ! .venv/bin/python -c "import alfworld, textworld" 2>/dev/null; then
      echo "[setup] installing the real ALFWorld engine (alfworld==0.4.2; first time compiles ~4 min)"
      pip_install -e ".[dev,alfworld]"
    fi
    .venv/bin/ruff check src tests benchmarks
    exec .venv/bin/pytest "$@"
    ;;
  *) echo "usage: bash scripts/run.sh quickstart|test|setup" >&2; exit 2 ;;
esac
