"""The miner interface: trace, self (through a generate_text callable) and the factory; the skills CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from micro_policy import expert_trajectories
from siri.cli import app
from siri.rollout.types import StepRecord, Trajectory
from siri.skills.bank import SkillBank
from siri.skills.miners import MinerError, SelfMiner, TraceMiner, make_miner
from siri.skills.prompts import MINING_TEMPLATE_WORDS, mining_prompts, mining_words, successes
from siri.skills.trace import trace_skills


def _traj(traj: int, obj: str, won: bool = True, task_type: str = "pick_and_place", score: float | None = None
          ) -> Trajectory:
    actions = [
        f"go to desk {traj + 1}",
        f"take {obj} 1 from desk {traj + 1}",
        "go to safe 1",
        f"move {obj} 1 to safe 1",
    ]
    steps = [
        StepRecord(
            group=0, traj=traj, t=t, seed=0, task_type=task_type, prompt_ids=[], response_ids=[],
            old_logprobs=[], action_mask=[], action=a, valid=True, reward=0.0, done=t == 3, won=won and t == 3,
            anchor=t,
        )
        for t, a in enumerate(actions)
    ]  # fmt: skip
    return Trajectory(group=0, traj=traj, seed=0, task=f"put a {obj} in safe.", task_type=task_type, steps=steps,
                      won=won, score=float(won) if score is None else score)  # fmt: skip


TRAJS = [
    _traj(0, "cd"),
    _traj(1, "pen"),
    _traj(2, "key"),
    _traj(3, "cd", won=False),
    _traj(4, "cd", task_type="x"),
]


def test_trace_miner_is_trace_skills() -> None:
    miner = make_miner("trace", env="household")
    assert miner.name == "trace"
    assert miner.mine("pick_and_place", TRAJS, 2) == trace_skills("household", "pick_and_place", TRAJS)[:2]
    assert TraceMiner("household").mine("pick_and_place", [], 3) == []
    commands = make_miner("trace", env="textworld").mine("pick_and_place", TRAJS, 2)  # command-plan rules
    assert commands == trace_skills("textworld", "pick_and_place", TRAJS)[:2] and commands != miner.mine(
        "pick_and_place", TRAJS, 2)
    generic = make_miner("trace", env="otherworld").mine("pick_and_place", TRAJS, 2)  # no rules of its own
    assert generic == trace_skills("otherworld", "pick_and_place", TRAJS)[:2] and generic not in (
        commands, miner.mine("pick_and_place", TRAJS, 2))
    legacy = make_miner("trace", env="household", style="legacy").mine("pick_and_place", TRAJS, 3)
    assert legacy == trace_skills("household", "pick_and_place", TRAJS, style="legacy")[:3] != miner.mine(
        "pick_and_place", TRAJS, 3)
    with pytest.raises(ValueError, match="trace style"):
        trace_skills("household", "pick_and_place", TRAJS, style="prose")


def _expert_episodes(n: int) -> list[Trajectory]:
    """The household expert's episodes of seeds 0..n-1 (every task type): real successes, real words."""
    from siri import envs

    return expert_trajectories(envs.make("household"), range(n))


_DET = r"(?:an?|the|two)"
_LIST_RE = re.compile(rf"(?:{_DET} \w+, )*{_DET} \w+ (?:or|and) {_DET} \w+")
_PLACEMENT_RE = re.compile(r"^WHEN you need an? \w+ THEN look in (the \w+(?:, the \w+)*(?: and the \w+)?) first$")


def test_trace_sentences_over_300_expert_successes_read_cleanly() -> None:
    """Every skill the trace miner writes from real household successes, over all of them, per task type and
    per pair (the warm start's mining lessons show two): no repeated alternative, no empty role word, no
    dangling list, "a"/"an" by the word, one "first" at most, placements in the shared form."""
    trajs = _expert_episodes(300)
    assert sum(t.won for t in trajs) == 300
    by_type: dict[str, list[Trajectory]] = {}
    for t in trajs:
        by_type.setdefault(t.task_type, []).append(t)
    assert len(by_type) == 6
    batches = [("general", trajs)] + [(tt, ts) for tt, ts in by_type.items()]
    batches += [(tt, ts[i : i + 2]) for tt, ts in by_type.items() for i in range(0, len(ts) - 1, 2)]
    batches += [(tt, ts[i : i + 5]) for tt, ts in by_type.items() for i in range(0, len(ts) - 4, 5)]
    skills = {s for tt, ts in batches for s in trace_skills("household", tt, ts)}
    placements = [s for s in skills if s.startswith("WHEN you need")]
    assert len(skills) > 300 and len(placements) > 100
    for skill in skills:
        assert "  " not in skill and " the or" not in skill and "in the or" not in skill, skill
        assert not re.search(r"\b(?:a|an|the|two)(?: (?:or|and)|,|$)", skill), skill  # a role word went missing
        assert not re.search(r"\ba [aeiou]|\ban [^aeiou\W]", skill), skill
        assert skill.count("first") <= 1 and skill.count(" THEN ") == 1, skill
        assert not re.search(r"\b(\w+) (?:or|and) (?:an? |the |two )?\1\b", skill), skill  # "X or X"
        for found in _LIST_RE.findall(skill):
            nouns = re.findall(rf"{_DET} (\w+)", found)
            assert len(nouns) == len(set(nouns)) <= 3, (skill, found)
    env_words = {w for t in trajs for text in (t.task, t.task_type.replace("_", " "), *(x.action for x in t.steps))
                 for w in mining_words(text)}  # fmt: skip
    unknown = {w for skill in skills for w in mining_words(skill)} - env_words - MINING_TEMPLATE_WORDS
    assert not unknown  # the tiny model's word-level vocabulary knows every word
    for skill in placements:
        m = _PLACEMENT_RE.match(skill)
        assert m, skill
        places = re.findall(r"the (\w+)", m.group(1))
        assert 1 <= len(places) == len(set(places)) <= 3, skill


def test_mining_prompts_chunk_won_episodes_of_the_task_type() -> None:
    prompts = mining_prompts("pick_and_place", TRAJS, 3, episodes_per_prompt=2)
    assert len(prompts) == 2  # three won pick_and_place episodes, two per prompt
    assert "episode 2:" in prompts[0][1]["content"] and "episode 2:" not in prompts[1][1]["content"]
    assert "task: put a key in safe." in prompts[1][1]["content"]
    with pytest.raises(ValueError, match="episodes_per_prompt"):
        mining_prompts("pick_and_place", TRAJS, 3, episodes_per_prompt=0)


def test_min_score_makes_good_partial_scores_successes() -> None:
    """Shop-like partial credit: with min_score, a lost episode that scored well is learned from."""
    close = _traj(5, "pen", won=False, score=0.75)
    poor = _traj(6, "cd", won=False, score=0.25)
    trajs = [close, poor, _traj(7, "key", task_type="x")]
    assert successes(trajs, "pick_and_place") == []
    assert successes(trajs, "pick_and_place", min_score=0.5) == [close]
    assert successes(trajs, "general", min_score=0.75) == [close, trajs[2]]  # the bound is inclusive
    assert trace_skills("household", "pick_and_place", trajs) == []
    assert trace_skills("household", "pick_and_place", trajs, min_score=0.5) == trace_skills(
        "household", "pick_and_place", [_traj(5, "pen")])
    assert make_miner("trace", env="household", min_score=0.5).mine("pick_and_place", trajs, 3) != []
    prompts = mining_prompts("pick_and_place", trajs, 3, min_score=0.5)
    assert len(prompts) == 1 and "take pen 1 from desk 6" in prompts[0][1]["content"]
    assert "cd" not in prompts[0][1]["content"]
    seen: list[list[list[dict[str, str]]]] = []
    miner = make_miner("self", generate_text=lambda batch: seen.append(batch) or ["WHEN a THEN b"] * len(batch),
                       min_score=0.5)
    assert miner.mine("pick_and_place", trajs, 3) == ["WHEN a THEN b"] and seen == [prompts]


def test_self_miner_batches_parses_and_dedupes() -> None:
    seen: list[list[list[dict[str, str]]]] = []

    def generate_text(batch: list[list[dict[str, str]]]) -> list[str]:
        seen.append(batch)
        return [
            "1. WHEN the safe is closed THEN open it\nnot a skill\nWHEN you need a cd THEN go to the desk",
            "when the safe is closed then open it\nWHEN stuck THEN look",
        ][: len(batch)]

    miner = SelfMiner(generate_text, episodes_per_prompt=2)
    skills = miner.mine("pick_and_place", TRAJS, max_skills=3)
    assert len(seen) == 1 and len(seen[0]) == 2  # one batched call for both prompts
    assert skills == [
        "WHEN the safe is closed THEN open it",
        "WHEN you need a cd THEN go to the desk",
        "WHEN stuck THEN look",
    ]
    assert miner.mine("pick_and_place", TRAJS, max_skills=1) == ["WHEN the safe is closed THEN open it"]
    assert miner.mine("other", TRAJS, 3) == [] and len(seen) == 2  # no episodes: no call
    broken = SelfMiner(lambda batch: ["WHEN a THEN b"], episodes_per_prompt=1)
    with pytest.raises(MinerError, match="returned 1 texts for 3 prompts"):
        broken.mine("pick_and_place", TRAJS, 3)


def test_make_miner_errors() -> None:
    with pytest.raises(ValueError, match="unknown miner 'gpt'"):
        make_miner("gpt")
    with pytest.raises(ValueError, match="bad options for the external miner"):
        make_miner("external", base_url="http://127.0.0.1:1/v1")  # no model
    with pytest.raises(ValueError, match="bad options for the trace miner"):
        make_miner("trace")  # no env: the trace rules are the environment's


def test_skills_cli_table_and_json(tmp_path: Path) -> None:
    bank = SkillBank.open(tmp_path)
    bank.add_candidates(trace_skills("household", "pick_and_place", TRAJS), "pick_and_place", 2, "trace")
    for d in (0.5, 0.25, 0.75, 0.5, 0.5, 0.25, 0.75, 0.5, 0.5, 0.25):  # the default gate's first look: 10
        bank.record_paired("s1", [d], [0.0], 3)
    bank.update_status(4)
    bank.save()
    runner = CliRunner()
    result = runner.invoke(app, ["skills", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "active" in result.output and "+0.475 ± 0.222" in result.output and "candidate" in result.output
    result = runner.invoke(app, ["skills", str(tmp_path / "skill_bank.json"), "--json", "--status", "active"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    (skill,) = out["skills"]
    assert (skill["id"], skill["evaluations"], skill["status"]) == ("s1", 10, "active")
    # the gate's bounds at its first look (alpha 0.05 over looks 10..16): 0.475 -/+ t_9(1 - 0.00206) s / sqrt(10)
    assert skill["lcb"] == pytest.approx(0.25254, abs=1e-4) and skill["ucb"] == pytest.approx(0.69746, abs=1e-4)
    assert out["gate"] == {"alpha": 0.05, "min_evals": 4, "max_evals": 16, "first_look": 10}
    (tmp_path / "skill_bank.json").write_text('{"schema": "something.else"}')
    result = runner.invoke(app, ["skills", str(tmp_path)])
    assert result.exit_code == 1 and "not a SIRI skill bank" in result.output
