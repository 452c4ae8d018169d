import pytest

from siri.envs import ENVIRONMENTS, EnvError, make


def test_unknown_env_names_the_choices():
    with pytest.raises(EnvError, match=r"unknown environment 'nope'.*household"):
        make("nope")


def test_registry_lists_builtin_envs():
    assert {"household", "shop", "alfworld"} <= set(ENVIRONMENTS)
