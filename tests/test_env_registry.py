import os
import subprocess
import sys
from pathlib import Path

import pytest

from siri.envs import ENVIRONMENTS, EnvError, make

ROOT = Path(__file__).resolve().parents[1]


def test_unknown_env_names_the_choices():
    with pytest.raises(EnvError, match=r"unknown environment 'nope'.*household.*scienceworld.*textworld"):
        make("nope")


def test_registry_lists_builtin_envs():
    assert {"household", "shop", "alfworld", "textworld", "scienceworld"} <= set(ENVIRONMENTS)


def test_third_party_engines_are_imported_only_when_used():
    """Importing the registry (and the adapters' modules) loads no engine: the extras stay optional."""
    code = ("import sys, siri.envs, siri.envs.textworld_env, siri.envs.scienceworld_env\n"
            "print(sorted(m for m in ('textworld', 'scienceworld', 'py4j', 'alfworld') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})  # this checkout's package
    assert out.stdout.strip() == "[]", out.stderr
