"""The real ALFWorld engine behind the common Env interface.

Plays ALFWorld game files (``game.tw-pddl`` with ``traj_data.json`` beside it) through TextWorld's
``PddlEnv`` wrapped as ALFWorld's own training environment does (``AlfredDemangler`` names the
instances, ``AlfredInfos`` records the game file). Where the games come from:

- ``games``: a folder (searched recursively, as ALFWorld does), one game file, or a list of them —
  e.g. household scenes written by ``siri env export-alfworld`` — or a mapping from split to any of
  these (``{train: games/train, eval_id: games/eval}``), so training and evaluation use separate games;
- otherwise ``$ALFWORLD_DATA/json_2.1.1/{train,valid_seen,valid_unseen}`` for split
  ``train``/``eval_id``/``eval_ood`` (the official data, where a user has downloaded it).

Games are sorted by path; seed ``i`` plays game ``i`` (``split_size()`` games in all).

Anchor: the frozenset of the engine's true facts after the step, without the bookkeeping predicates
``checked``/``examined``/``isOn`` that no precondition, goal or text ever reads (``isOn`` flips on
every "use" while the text always says "You turn on"). The expert is ALFWorld's planner (Fast
Downward replanning from the current state), asked only when ``expert_action()`` is called.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from siri.envs.base import EnvError, EpisodeTracker, Observation, Step, malformed_action

SPLIT_DIRS = {"train": "train", "eval_id": "valid_seen", "eval_ood": "valid_unseen"}
IGNORED_FACTS = frozenset({"checked", "examined", "ison"})
MAX_ACTION_CHARS = 200
TASK_PREFIX = "Your task is to: "


def find_games(root: str | Path) -> list[Path]:
    """Playable games under ``root`` the way ALFWorld collects them: ``game.tw-pddl`` beside
    ``traj_data.json``, skipping movable-receptacle and sliced-object tasks and unsolvable games."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise EnvError(f"alfworld: no such game file or folder: {root}")
    games = []
    for game in sorted(root.rglob("game.tw-pddl")):
        folder = str(game.parent)
        if "movable" in folder or "Sliced" in folder or not (game.parent / "traj_data.json").exists():
            continue
        try:
            solvable = json.loads(game.read_text()).get("solvable", False)
        except (OSError, json.JSONDecodeError) as e:
            raise EnvError(f"alfworld: corrupt game file {game}: {e}") from e
        if solvable:
            games.append(game)
    return games


class AlfworldEnv:
    """ALFWorld's engine as an Env (see the module docstring).

    Args:
        games: folder of games, one game file, a list of game files, or a comma-separated string of
            them, or a mapping split -> one of these; default: the official data under
            ``$ALFWORLD_DATA`` for ``split``.
        split: "train", "eval_id" (valid_seen) or "eval_ood" (valid_unseen); only picks the official
            data folder when ``games`` is not given.
        max_steps: the episode ends (truncated) after this many actions.
        success_reward: reward of the step that solves the task.
        task_types: keep only games of these ALFWorld task types.
    """

    name = "alfworld"

    def __init__(
        self,
        games: str | list[str] | dict[str, str | list[str]] | None = None,
        split: str = "train",
        max_steps: int = 50,
        success_reward: float = 1.0,
        task_types: list[str] | None = None,
    ) -> None:
        if split not in SPLIT_DIRS:
            raise EnvError(f"unknown alfworld split {split!r}; choose one of: {', '.join(SPLIT_DIRS)}")
        self.split = split
        self.max_steps = int(max_steps)
        self.success_reward = float(success_reward)
        self.games = self._collect(games, split)
        if task_types:
            if isinstance(task_types, str):
                task_types = task_types.split(",")
            self.games = [g for g in self.games if self._read_task_type(g) in task_types]
        if not self.games:
            raise EnvError(f"alfworld: no playable games found in {games or os.environ.get('ALFWORLD_DATA')}")
        self._tracker = EpisodeTracker(self.max_steps)
        self._env: Any = None
        self._loaded: Path | None = None
        self._state: Any = None
        self._obs: Observation | None = None
        self._task = ""
        self._task_type = ""

    @staticmethod
    def _collect(games: str | list[str] | dict[str, str | list[str]] | None, split: str) -> list[Path]:
        if isinstance(games, dict):
            unknown = sorted(set(games) - set(SPLIT_DIRS))
            if unknown or split not in games:
                raise EnvError(f"alfworld: games maps splits to game folders; it names {sorted(games)}, "
                               f"needs {split!r}" + (f" and knows no split {unknown}" if unknown else "")
                               + f" (splits: {', '.join(SPLIT_DIRS)})")
            games = games[split]
        if games is None:
            data = os.environ.get("ALFWORLD_DATA")
            if not data:
                raise EnvError(
                    "alfworld: no games given and ALFWORLD_DATA is not set; pass games=<folder or files> "
                    "(e.g. household scenes written by `siri env export-alfworld --seeds 0-19 --out DIR`) "
                    "or set ALFWORLD_DATA to the official ALFWorld data"
                )
            return find_games(Path(data) / "json_2.1.1" / SPLIT_DIRS[split])
        if isinstance(games, str):
            games = [g for g in games.split(",") if g]
        found: list[Path] = []
        for g in games:
            found += find_games(g)
        return found

    @staticmethod
    def _read_task_type(game: Path) -> str:
        try:
            return json.loads((game.parent / "traj_data.json").read_text())["task_type"]
        except (OSError, json.JSONDecodeError, KeyError) as e:
            raise EnvError(f"alfworld: unreadable traj_data.json next to {game}: {e}") from e

    def split_size(self) -> int | None:
        return len(self.games)

    def _engine(self) -> Any:
        if self._env is None:
            try:
                import textworld
                from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
                from textworld.envs import PddlEnv
            except ImportError as e:
                raise EnvError(
                    f"the alfworld environment needs the alfworld engine ({e}); install: pip install 'siri-rl[alfworld]'"
                ) from e
            infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=True, extras=["gamefile"])
            self._env = AlfredInfos(AlfredDemangler(PddlEnv(infos)))
        return self._env

    def reset(self, seed: int) -> Observation:
        if not isinstance(seed, int) or not 0 <= seed < len(self.games):
            raise EnvError(
                f"alfworld: seed must be an int in 0..{len(self.games) - 1} (one per game), got {seed!r}"
            )
        game = self.games[seed]
        env = self._engine()
        if self._loaded != game:
            env.load(str(game))
            self._loaded = game
        self._state = env.reset()
        self._task_type = self._read_task_type(game)
        text = self._state.feedback
        self._task = text.split(TASK_PREFIX, 1)[1].strip() if TASK_PREFIX in text else ""
        self._tracker.start()
        self._obs = self._observe(text)
        return self._obs

    def step(self, action: str) -> Step:
        self._tracker.before_step(self.name)
        assert self._obs is not None
        malformed = malformed_action(action, MAX_ACTION_CHARS)
        reason = malformed
        if not reason and not action.strip():
            reason = "empty action"
        elif not reason and action.strip() not in self._obs.admissible_actions:
            reason = f"not an admissible action: {action.strip()[:80]!r}"
        if malformed:
            text = "Nothing happens."  # never hand the engine something it was not built for
        else:
            self._state, _, _ = self._env.step(action)
            text = self._state.feedback
        won = bool(self._state["won"])
        done, truncated = self._tracker.finish(won)
        self._obs = self._observe(text)
        return Step(
            observation=self._obs,
            reward=self.success_reward if won else 0.0,
            done=done,
            won=won,
            valid=not reason,
            reason=reason,
            score=1.0 if won else 0.0,
            truncated=truncated,
        )

    def expert_action(self) -> str:
        if self._obs is None:
            raise EnvError("alfworld: expert_action() before reset(seed); call reset(seed) first")
        pddl = self._env.unwrapped  # ALFWorld's planner expert does exactly this replanning call
        plan = pddl._pddl_state.replan(pddl._entity_infos)
        return plan[0] if plan else "look"

    def anchor(self) -> Hashable:
        facts = self._state["facts"]
        return frozenset(
            (f.name, *(v.name for v in f.arguments)) for f in facts if f.name not in IGNORED_FACTS
        )

    def _observe(self, text: str) -> Observation:
        return Observation(
            text=text,
            task=self._task,
            task_type=self._task_type,
            admissible_actions=tuple(self._state["admissible_commands"]),
            anchor=self.anchor(),
            step=self._tracker.steps,
        )

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
            self._loaded = None
