"""TextWorld games (Microsoft's text-game generator and engine) behind the common Env interface.

Where the games come from, one of:

- ``games``: ``.z8`` games written by ``tw-make`` (each with the ``.json`` TextWorld writes beside it): a
  folder (searched recursively), one game file, a list of them, a comma-separated string, or a mapping
  from split to any of these (``{train: games/train, eval: games/eval}``), as the alfworld adapter takes
  them. Glulx (``.ulx``) games are refused: TextWorld 1.7 cannot run them any more. With a mapping, a game
  that both the train and the eval games name is refused (naming it); anything else (a folder, file or
  list) is every split's games: train and eval play the same games, nothing is held out.
- a generator spec (the default): ``challenge`` (one of ``CHALLENGES``; default ``tw-cooking``, the games of
  Microsoft's First TextWorld Problems competition, at one room and one ingredient to find),
  ``settings`` (the challenge's own ``tw-make`` flags, e.g. ``{level: 5}`` or ``{recipe: 2, take: 1, go: 6,
  open: true}``; defaults in ``DEFAULT_SETTINGS``) and ``seeds`` (per split, the TextWorld seeds of its
  games). Each game is generated on first use by TextWorld's own generator (about a second) and cached
  under ``<cache>/textworld/`` (``$SIRI_CACHE`` or ``~/.cache/siri``), so later runs and other processes
  reuse it.

Splits: ``train`` and ``eval``. Generated games use train seeds 0-999 and eval seeds 1000000-1000019 by
default; seeds a user gives must not overlap (refused, naming the shared ones). Where the challenge has a
held-out distribution of its own, the eval split also draws from it (``tw-simple``: ``test``;
``tw-cooking``: ``split: valid``, food items never seen in training) unless ``settings`` sets that key.
Seed ``i`` of a split plays its game ``i mod split_size()`` (``split_seed``).

Actions: the engine's admissible commands (sorted). Any other command is invalid and never reaches the
engine, so the state is unchanged ("Nothing happens.").

Score and reward: ``score`` is the game's points over its maximum (TextWorld's intermediate rewards:
``tw-simple`` with dense rewards pays a point per subgoal), ``reward`` the step's gain in score, so an
episode's rewards add up to its final score. ``won`` is the engine's; a lost game (``tw-cooking``: eating
an ingredient raw or burning it) ends the episode with the points earned so far.

Anchor: the frozenset of the engine's true facts after the step (every predicate over the game's entities,
with their types), never the text: "examine" and "look" leave it unchanged, two rooms described alike
stay apart. Expert: the game's walkthrough while the episode follows it (steps that leave the facts as
they were do not count as a detour); after a detour, TextWorld's own winning policy from the current state
(``policy_commands``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import warnings
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from siri.envs.base import EnvError, EpisodeTracker, Observation, Step, malformed_action, split_seed
from siri.utils.io import atomic_dir, atomic_write_json, cache_root, dir_lock

SPLITS = ("train", "eval")
CHALLENGES = ("tw-simple", "tw-cooking", "tw-coin_collector", "tw-treasure_hunter")
DEFAULT_CHALLENGE = "tw-cooking"
# What a challenge plays when ``settings`` leaves a key out (its required flags need a value).
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "tw-simple": {"rewards": "dense", "goal": "detailed"},
    "tw-cooking": {"recipe": 1, "take": 1, "go": 1},
    "tw-coin_collector": {"level": 5},
    "tw-treasure_hunter": {"level": 5},
}
# The challenge's own train and held-out distributions, per split, unless ``settings`` names the key.
SPLIT_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "tw-simple": {"train": {"test": False}, "eval": {"test": True}},
    "tw-cooking": {"train": {"split": "train"}, "eval": {"split": "valid"}},
}
DEFAULT_SEEDS = {"train": "0-999", "eval": "1000000-1000019"}
INSTALL = "pip install 'siri-rl[textworld]'"
NOTHING = "Nothing happens."
MAX_ACTION_CHARS = 200


def _textworld() -> Any:
    """The ``textworld`` package, or the error that names the extra to install."""
    try:
        import textworld
        import textworld.challenges
        import textworld.generator
    except ImportError as e:
        raise EnvError(f"the textworld environment needs TextWorld ({e}); install: {INSTALL}") from e
    return textworld


# ------------------------------------------------------------------------------------------ game files


def find_games(root: str | Path) -> list[Path]:
    """The ``.z8`` games under ``root`` (a folder, searched recursively, or one file), sorted by path."""
    root = Path(root).expanduser()
    if root.is_file():
        games = [root]
    elif root.is_dir():
        games = sorted(root.rglob("*.z8"))
        if not games and any(root.rglob("*.ulx")):
            games = sorted(root.rglob("*.ulx"))  # refused below, with the reason
    else:
        raise EnvError(f"textworld: no such game file or folder: {root}")
    for game in games:
        if game.suffix == ".ulx":
            raise EnvError(f"textworld: {game} is a Glulx (.ulx) game; TextWorld 1.7 (the version "
                           "siri-rl[textworld] pins, as ALFWorld does) cannot run Glulx games: make it "
                           "again as .z8 with tw-make")
        if not re.fullmatch(r"\.z[1-8]", game.suffix):
            raise EnvError(f"textworld: {game} is not a Z-machine game (.z8); tw-make writes .z8 games")
        if not game.with_suffix(".json").exists():
            raise EnvError(f"textworld: {game} has no {game.with_suffix('.json').name} beside it; the "
                           "adapter reads the game's facts and commands from the .json that tw-make writes "
                           "with every game")
    return games


def _collect(games: str | Sequence[str] | Mapping[str, Any], split: str) -> list[Path]:
    """The games of ``split``. A mapping gives each split its own games, and a game both its train and its
    eval games name (the same file, by any path) is refused; anything else is every split's games."""
    if isinstance(games, Mapping):
        unknown = sorted(set(games) - set(SPLITS))
        if unknown or split not in games:
            raise EnvError(f"textworld: games maps splits to games; it names {sorted(games)}, needs {split!r}"
                           + (f" and knows no split {unknown}" if unknown else "")
                           + f" (splits: {', '.join(SPLITS)})")
        if all(s in games for s in SPLITS):
            per_split = {s: _collect(games[s], s) for s in SPLITS}
            eval_files = {_file_id(g) for g in per_split["eval"]}
            shared = [str(g) for g in per_split["train"] if _file_id(g) in eval_files]
            if shared:
                more = ", ..." if len(shared) > 5 else ""
                raise EnvError(f"textworld: the train and eval games overlap ({len(shared)} shared: "
                               f"{', '.join(shared[:5])}{more}); a game must not be trained on and "
                               "evaluated on")
            return per_split[split]
        games = games[split]
    if isinstance(games, (str, Path)):
        games = [g for g in str(games).split(",") if g.strip()]
    found: list[Path] = []
    for g in games:
        found += find_games(str(g).strip())
    if not found:
        raise EnvError(f"textworld: no .z8 games found in {games}")
    return found


def _file_id(path: Path) -> tuple[int, int]:
    """The file itself (device, inode): the same game by any path, link or hard link."""
    st = path.stat()
    return st.st_dev, st.st_ino


# ------------------------------------------------------------------------------------------ generation


def parse_seeds(value: Any) -> tuple[int, ...]:
    """Seeds as ``A-B`` (inclusive), ``N``, a comma list of these, or a list of ints."""
    if isinstance(value, str):
        items = value.split(",")
    else:
        items = value if isinstance(value, (list, tuple)) else [value]
    seeds: list[int] = []
    for item in items:
        text = str(item).strip()
        lo, sep, hi = text.partition("-")
        try:
            if isinstance(item, bool):
                raise ValueError
            span = range(int(lo), int(hi) + 1) if sep else [int(text)]
        except ValueError:
            raise EnvError(f"textworld: bad seeds {value!r}: use A-B (inclusive), a number, or a list "
                           "like 0-99,200") from None
        if sep and int(hi) < int(lo):
            raise EnvError(f"textworld: bad seeds {value!r}: {text} runs backwards")
        if any(s < 0 for s in span):
            raise EnvError(f"textworld: seeds must be non-negative, got {value!r}")
        seeds += span
    if not seeds:
        raise EnvError(f"textworld: no seeds in {value!r}")
    if len(set(seeds)) != len(seeds):
        raise EnvError(f"textworld: seeds {value!r} name a seed twice")
    return tuple(seeds)


def split_seeds(seeds: Mapping[str, Any] | None) -> dict[str, tuple[int, ...]]:
    """Each split's TextWorld seeds (``seeds`` overrides ``DEFAULT_SEEDS`` per split); overlaps are
    refused."""
    seeds = dict(seeds or {})
    unknown = sorted(set(seeds) - set(SPLITS))
    if unknown:
        raise EnvError(f"textworld: seeds names unknown split(s) {unknown}; splits: {', '.join(SPLITS)}")
    parsed = {split: parse_seeds(seeds.get(split, DEFAULT_SEEDS[split])) for split in SPLITS}
    shared = sorted(set(parsed["train"]) & set(parsed["eval"]))
    if shared:
        raise EnvError(f"textworld: the train and eval seeds overlap ({len(shared)} shared, e.g. "
                       f"{shared[:5]}); a game must not be trained on and evaluated on")
    return parsed


class _SettingsParser(argparse.ArgumentParser):
    """The challenge's own ``tw-make`` argument parser, raising instead of exiting."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise EnvError(message)


def challenge_settings(challenge: str, settings: Mapping[str, Any] | None, split: str) -> dict[str, Any]:
    """Every setting of ``challenge`` for ``split``: ``settings`` over the split's and the defaults, checked
    by the challenge's own ``tw-make`` parser (an unknown key or bad value names the valid ones)."""
    tw = _textworld()
    if challenge not in CHALLENGES:
        raise EnvError(f"textworld: unknown challenge {challenge!r}; choose one of: {', '.join(CHALLENGES)}")
    if settings is not None and not isinstance(settings, Mapping):
        raise EnvError(f"textworld: settings must be a mapping like {{level: 5}}, got {settings!r}")
    given = {str(k).replace("-", "_"): v for k, v in (settings or {}).items()}
    merged = {**DEFAULT_SETTINGS[challenge], **SPLIT_SETTINGS.get(challenge, {}).get(split, {}), **given}
    parser = _SettingsParser(prog=challenge, add_help=False)
    tw.challenges.CHALLENGES[challenge][2](parser)
    flags = {a.dest: a for a in parser._actions}
    unknown = sorted(set(merged) - set(flags))
    if unknown:
        raise EnvError(f"textworld: {challenge} has no setting(s) {', '.join(unknown)}; its settings: "
                       f"{', '.join(sorted(flags))}")
    argv: list[str] = []
    for key, value in merged.items():
        flag = flags[key].option_strings[-1]
        if isinstance(flags[key], argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise EnvError(f"textworld: {challenge} setting {key} is true or false, got {value!r}")
            argv += [flag] if value else []
        else:
            argv += [flag, str(value)]
    try:
        return vars(parser.parse_args(argv))
    except EnvError as e:
        raise EnvError(f"textworld: bad {challenge} settings {dict(merged)}: {e}") from None


def generated_game(challenge: str, settings: Mapping[str, Any], seed: int, root: Path | None = None) -> Path:
    """The game ``tw-make <challenge> --seed <seed>`` with ``settings`` makes, generated into the cache
    once."""
    tw = _textworld()
    blob = json.dumps({"challenge": challenge, "settings": dict(settings), "textworld": tw.__version__},
                      sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()[:12]
    folder = (root or cache_root() / "textworld") / f"{challenge}-{key}" / f"seed-{seed}"
    game = folder / "game.z8"
    if game.exists():
        return game
    with dir_lock(folder):
        if game.exists():
            return game
        with atomic_dir(folder) as tmp:
            options = tw.GameOptions()
            options.seeds = seed
            options.path = str(tmp / "game.z8")
            options.file_ext = ".z8"
            options.force_recompile = True
            with _quiet():  # compiling plays the walkthrough through Jericho, which warns about every game
                made = tw.challenges.CHALLENGES[challenge][1](settings=dict(settings), options=options)
                tw.generator.compile_game(made, options)
            spec = {"challenge": challenge, "settings": dict(settings), "seed": seed,
                    "textworld": tw.__version__}
            atomic_write_json(tmp / "spec.json", spec)
    return game


# ------------------------------------------------------------------------------------------ the env


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without Jericho's "not fully supported" warning, raised for every generated game: Jericho only knows
    the scoring of published games, and TextWorld scores these games itself (from their .json)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Game '.*' is not fully supported", category=UserWarning)
        yield


def clean_text(text: str) -> str:
    """The engine's text without the title banner (ASCII-art lines with no letter), the interpreter's prompt
    and status line ("> ... -= Kitchen =-0/2") and runs of blank lines."""
    lines = [line.rstrip() for line in str(text).splitlines()]
    kept: list[str] = []
    for line in lines:
        if line.startswith(">") or (line.strip() and not any(c.isalpha() for c in line)):
            continue
        if not line.strip() and (not kept or not kept[-1]):
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def task_type_of(game: Path) -> str:
    """The challenge a game was made by (from its TextWorld uuid), else "textworld"."""
    try:
        uuid = str(json.loads(game.with_suffix(".json").read_text()).get("metadata", {}).get("uuid", ""))
    except (OSError, json.JSONDecodeError) as e:
        raise EnvError(f"textworld: unreadable {game.with_suffix('.json')}: {e}") from e
    return next((c for c in CHALLENGES if uuid.startswith(c + "-")), "textworld")


class TextWorldEnv:
    """TextWorld games as an Env (see the module docstring).

    Args:
        split: "train" or "eval".
        max_steps: the episode ends (truncated) after this many actions.
        games: existing games (folder, file, list, comma string, or split -> those); excludes the generator
            spec. Without a split mapping every split plays the same games; a mapping's splits must not share
            one.
        challenge: the ``tw-make`` challenge that generates the games (default tw-cooking).
        settings: the challenge's ``tw-make`` flags (``{level: 5}``); defaults per challenge in
            ``DEFAULT_SETTINGS``.
        seeds: per split, the TextWorld seeds of its games (``{train: 0-499, eval: 1000000-1000049}``).
    """

    name = "textworld"

    def __init__(
        self,
        split: str = "train",
        max_steps: int = 50,
        games: str | list[str] | dict[str, Any] | None = None,
        challenge: str | None = None,
        settings: dict[str, Any] | None = None,
        seeds: dict[str, Any] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise EnvError(f"unknown textworld split {split!r}; choose one of: {', '.join(SPLITS)}")
        self.split = split
        self.max_steps = int(max_steps)
        self._tracker = EpisodeTracker(self.max_steps)
        _textworld()  # the missing extra is said here, before any game is looked for
        self._files: list[Path] | None = None
        self._seeds: tuple[int, ...] = ()
        if games is not None:
            if challenge is not None or settings is not None or seeds is not None:
                raise EnvError("textworld: give either games (existing game files) or a generator spec "
                               "(challenge, settings, seeds), not both")
            self._files = _collect(games, split)
            self.challenge = ""
            self.settings: dict[str, Any] = {}
        else:
            self.challenge = challenge or DEFAULT_CHALLENGE
            self.settings = challenge_settings(self.challenge, settings, split)
            self._seeds = split_seeds(seeds)[split]
        self._env: Any = None
        self._loaded: Path | None = None
        self._state: Any = None
        self._obs: Observation | None = None
        self._game: Path | None = None
        self._task = ""
        self._task_type = ""
        self._score = 0.0
        self._walkthrough: list[str] = []
        self._on_walkthrough = False
        self._next = 0

    # ------------------------------------------------------------------ interface

    def split_size(self) -> int:
        return len(self._files) if self._files is not None else len(self._seeds)

    def game_file(self, index: int) -> Path:
        """The game of episode ``index`` of this split (generated into the cache first if needed)."""
        if self._files is not None:
            return self._files[index]
        return generated_game(self.challenge, self.settings, self._seeds[index])

    def reset(self, seed: int) -> Observation:
        try:
            index = split_seed(seed, self.split_size())
        except EnvError as e:
            raise EnvError(f"textworld: {e}") from None
        game = self.game_file(index)
        env = self._engine(game)
        with _quiet():
            self._state = env.reset()
        self._game = game
        self._task_type = self.challenge or task_type_of(game)
        objective = " ".join(str(self._state["objective"] or "").split())
        self._task = objective or "find out what the game wants and win it"
        self._walkthrough = [" ".join(a.split()) for a in (self._state.get("extra.walkthrough") or [])]
        self._on_walkthrough, self._next = bool(self._walkthrough), 0
        self._score = 0.0
        self._tracker.start()
        self._obs = self._observe(clean_text(self._state.feedback))
        return self._obs

    def step(self, action: str) -> Step:
        self._tracker.before_step(self.name)
        assert self._obs is not None
        reason, command = "", ""
        reason = malformed_action(action, MAX_ACTION_CHARS)
        if not reason:
            command = " ".join(action.split())
            if not command:
                reason = "empty action"
            elif command not in self._obs.admissible_actions:
                reason = f"not an admissible command: {command[:80]!r}"
        if reason:
            text = NOTHING  # never sent: the game's state is exactly as it was
        else:
            before = self._obs.anchor
            self._state, _, _ = self._env.step(command)
            text = clean_text(self._state.feedback)
            if self._on_walkthrough:
                if self._next < len(self._walkthrough) and command == self._walkthrough[self._next]:
                    self._next += 1
                elif self.anchor() != before:
                    self._on_walkthrough = False
        won, lost = bool(self._state["won"]), bool(self._state["lost"])
        score = self._points_share()
        reward, self._score = score - self._score, score
        done, truncated = self._tracker.finish(won or lost)
        self._obs = self._observe(text)
        return Step(
            observation=self._obs, reward=reward, done=done, won=won, valid=not reason, reason=reason,
            score=score, truncated=truncated,
            info={"lost": lost, "points": int(self._state["score"] or 0),
                  "max_points": int(self._state["max_score"] or 0)},
        )

    def expert_action(self) -> str:
        if self._obs is None:
            raise EnvError("textworld: expert_action() before reset(seed); call reset(seed) first")
        if self._on_walkthrough and self._next < len(self._walkthrough):
            planned = self._walkthrough[self._next]
            if planned in self._obs.admissible_actions:
                return planned
        policy = self._state["policy_commands"] or []
        return policy[0] if policy else "look"

    def anchor(self) -> Hashable:
        return frozenset(
            (fact.name, *(f"{v.name}:{v.type}" for v in fact.arguments)) for fact in self._state["facts"]
        )

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
            self._loaded = None

    # ------------------------------------------------------------------ helpers

    def _engine(self, game: Path) -> Any:
        tw = _textworld()
        if self._env is None:
            infos = tw.EnvInfos(admissible_commands=True, facts=True, policy_commands=True, won=True,
                                lost=True, score=True, max_score=True, objective=True, extras=["walkthrough"])
            with _quiet():
                self._env = tw.start(str(game), request_infos=infos)
            self._loaded = game
        elif self._loaded != game:
            with _quiet():
                self._env.load(str(game))
            self._loaded = game
        return self._env

    def _points_share(self) -> float:
        top = float(self._state["max_score"] or 0)
        return float(self._state["score"] or 0) / top if top > 0 else float(bool(self._state["won"]))

    def _observe(self, text: str) -> Observation:
        return Observation(
            text=text,
            task=self._task,
            task_type=self._task_type,
            admissible_actions=tuple(self._state["admissible_commands"]),
            anchor=self.anchor(),
            step=self._tracker.steps,
        )
