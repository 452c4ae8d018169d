"""Mining -> paired validation -> promotion/retirement on the real household environment.

No model here: a scripted agent plays household episodes and follows the expert with a probability
that depends on which skill its prompt shows (helpful, harmful, or no effect). The skill texts are
real (mined by the trace miner from the agent's own plain successes); everything from the validation
plan to the bank's decisions is the production code path.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from siri import envs
from siri.rollout.types import StepRecord, Trajectory
from siri.skills.bank import SkillBank
from siri.skills.miners import TraceMiner
from siri.skills.validation import Gate, assign_validation

PLAIN_EXPERT_PROB = 0.5


def play(env, seed: int, group: int, traj: int, expert_prob: float, skills: tuple[str, ...]) -> Trajectory:
    rng = random.Random(1_000_003 * seed + traj)
    obs = env.reset(seed)
    first = obs
    steps = []
    while True:
        action = env.expert_action() if rng.random() < expert_prob else rng.choice(obs.admissible_actions)
        result = env.step(action)
        steps.append(
            StepRecord(
                group=group, traj=traj, t=len(steps), seed=seed, task_type=first.task_type, prompt_ids=[],
                response_ids=[], old_logprobs=[], action_mask=[], action=action, valid=result.valid,
                reward=result.reward, done=result.done, won=result.won, anchor=obs.anchor,
                observation_text=obs.text, skill_ids=skills,
            )
        )  # fmt: skip
        obs = result.observation
        if result.done:
            break
    return Trajectory(group=group, traj=traj, seed=seed, task=first.task, task_type=first.task_type, steps=steps,
                      won=result.won, score=result.score, skill_ids=skills)  # fmt: skip


def test_paired_validation_promotes_helpful_and_retires_harmful(tmp_path: Path) -> None:
    env = envs.make("household", max_steps=12, task_types=["pick_and_place_simple"])
    # Warm-up: plain rollouts; mine the successes with the trace miner.
    warm = [play(env, seed, seed, seed, PLAIN_EXPERT_PROB, ()) for seed in range(12)]
    assert 0 < sum(t.won for t in warm) < len(warm)
    texts = TraceMiner("household").mine("pick_and_place_simple", warm, max_skills=3)
    bank = SkillBank.open(tmp_path)
    added = bank.add_candidates(texts, "pick_and_place_simple", iteration=0, miner="trace", sources=[0, 1])
    assert len(added) == 3
    helpful, harmful, neutral = (s.id for s in added)
    effect = {helpful: 0.95, harmful: 0.1, neutral: PLAIN_EXPERT_PROB}

    traj_id = 0
    for iteration in range(1, 11):
        seeds = [100 * iteration + g for g in range(6)]
        queue = bank.validation_queue("pick_and_place_simple")
        if not queue:
            break
        plan = assign_validation([6] * len(seeds), queue, share=0.5, seed=iteration, per_group=3)
        batch = []
        for g, (seed, row) in enumerate(zip(seeds, plan, strict=True)):
            for skill in row:
                skills = (skill,) if skill else ()
                batch.append(
                    play(env, seed, g, traj_id, effect[skill] if skill else PLAIN_EXPERT_PROB, skills)
                )
                traj_id += 1
        bank.record_rollouts(batch, iteration, value=lambda t: t.score)
        bank.update_status(iteration, Gate(min_evals=4, max_evals=24))
        bank.save()

    bank = SkillBank.open(tmp_path)  # the decisions survive a reload
    assert bank.get(helpful).status == "active" and bank.get(helpful).reason.startswith("LCB > 0")
    assert bank.get(harmful).status == "retired" and bank.get(harmful).reason.startswith("UCB <= 0")
    assert bank.get(neutral).status != "active"
    assert bank.get(helpful).utility.mean > 0.2 > -0.2 > bank.get(harmful).utility.mean
    assert [s.text for s in bank.select("pick_and_place_simple")] == [bank.get(helpful).text]


def test_mine_min_score_lets_shop_purchases_end_warmup_and_feed_the_miner(tmp_path: Path) -> None:
    """On the shop a weak policy rarely buys the exact product; with ``siri.mine_min_score`` its good
    partial purchases count as successes: they fill the buffer, end the warm-up and get mined."""
    from siri.config import TrainConfig
    from siri.skills.pipeline import SiriPipeline

    env = envs.make("shop", split="train", max_steps=15)
    played = [play(env, seed, seed, seed, 0.5, ()) for seed in range(24)]
    won = sum(t.won for t in played)
    good = [t for t in played if not t.won and t.score >= 0.5]
    assert good and any(t.score < 0.5 for t in played)  # partial matches, and poor or no purchases too

    def pipeline(*overrides: str) -> SiriPipeline:
        cfg = TrainConfig.load(None, ["env.name=shop", "siri.enabled=true", "siri.miner=trace",
                                      "siri.mine_every=1", f"siri.n_req_successes={won + len(good)}", *overrides])
        return SiriPipeline(cfg, tmp_path / "-".join(overrides or ("default",)))

    strict = pipeline()
    strict.observe(0, played, policy=None)
    assert strict.successes == won and strict.phase == "warmup" and strict.mined_total == 0

    lenient = pipeline("siri.mine_min_score=0.5")
    lenient.observe(0, played, policy=None)
    buffered = [t.traj for bucket in lenient.buffer.values() for t in bucket]
    assert sorted(buffered) == sorted(t.traj for t in played if t.won or t.score >= 0.5)
    assert lenient.successes == won + len(good) and lenient.phase == "skills" and lenient.mined_total > 0


def _pipeline(tmp_path: Path, *overrides: str):
    from siri.config import TrainConfig
    from siri.skills.pipeline import SiriPipeline

    cfg = TrainConfig.load(None, ["siri.enabled=true", "siri.warmup=false", "siri.validation_gate=true",
                                  "siri.weighting=advantage", "siri.adv_clip=0.5", "siri.lambda_ramp_iters=4",
                                  "siri.lambda_max=0.8", "env.max_steps=4", *overrides])
    return SiriPipeline(cfg, tmp_path)


def _bank_with(pipe, task_type: str, statuses_and_utilities: list[tuple[str, float]]) -> list[str]:
    from siri.skills.validation import ACTIVE

    texts = ["WHEN the cabinet is closed THEN open it before you take from it",
             "WHEN the task says heat THEN carry it to the microwave and open it",
             "WHEN nothing is on the countertop THEN search every drawer before the shelves"]
    ids = []
    for k, (status, utility) in enumerate(statuses_and_utilities):
        skill = pipe.bank.add_candidates([texts[k]], task_type, 0, "trace")[0]
        skill.status = status
        if status == ACTIVE:
            skill.promoted_at = 0
        skill.utility.add(utility, 0)
        ids.append(skill.id)
    return ids


def test_discounted_utility_credits_a_skill_that_wins_sooner(tmp_path: Path) -> None:
    """Both arms win, the skill arm in 3 steps, the plain one in 5: the plain return pairs them as exactly 0,
    ``siri.utility=discounted`` as gamma**2 - gamma**4 (hand-computed for gamma = 0.95)."""

    def won_in(steps: int, traj: int, skills: tuple[str, ...]) -> Trajectory:
        records = [StepRecord(group=0, traj=traj, t=t, seed=7, task_type="pick_and_place_simple", prompt_ids=[],
                              response_ids=[], old_logprobs=[], action_mask=[], action="look", valid=True,
                              reward=float(t == steps - 1), done=t == steps - 1, won=t == steps - 1, anchor=t,
                              skill_ids=skills) for t in range(steps)]
        return Trajectory(group=0, traj=traj, seed=7, task="put a mug in cabinet.", task_type="pick_and_place_simple",
                          steps=records, won=True, score=1.0, skill_ids=skills)

    for utility, expected in (("return", 0.0), ("discounted", 0.9025 - 0.81450625)):
        pipe = _pipeline(tmp_path / utility, "siri.miner=trace", "siri.mine_every=100", "algo.gamma=0.95",
                         f"siri.utility={utility}")
        (skill,) = _bank_with(pipe, "pick_and_place_simple", [("candidate", 0.0)])
        pipe.bank.get(skill).utility = type(pipe.bank.get(skill).utility)()
        pipe.observe(0, [won_in(3, 0, (skill,)), won_in(5, 1, ())], policy=None)
        assert [d for _, d in pipe.bank.get(skill).evals] == [pytest.approx(expected, abs=1e-12)]
        assert pipe.metrics()["skills/paired_zero_share"] == float(utility == "return")


def test_plan_pairs_every_skill_rollout_and_splits_groups_between_candidates_and_active_skills(tmp_path: Path) -> None:
    from siri.skills.validation import ACTIVE, CANDIDATE

    seeds = list(range(200, 280))
    for share in (0.0, 0.5, 1.0):
        pipe = _pipeline(tmp_path / str(share), f"siri.active_share={share}", "siri.validation_share=0.5")
        types = {s: pipe.task_type_of(s) for s in seeds}
        typed = sorted(set(types.values()))
        ids = _bank_with(pipe, typed[0], [(CANDIDATE, 0.0), (ACTIVE, 0.2)])  # both kinds for this type
        only_active = _bank_with(pipe, typed[1], [(ACTIVE, 0.1)])  # no candidate of this type: always active
        specs = pipe.plan(3, seeds, 4)
        assert len(specs) == 4 * len(seeds)
        served = {"candidate": 0, "active": 0}
        for g, seed in enumerate(seeds):
            row = [s.skills for s in specs if s.group == g]
            shown = [sk for sk in row if sk]
            assert all(s.seed == seed for s in specs if s.group == g)
            if types[seed] == typed[0]:
                assert len(shown) == 2 and len(row) - len(shown) == 2  # paired: two with, two plain
                served["candidate" if shown[0][0][0] == ids[0] else "active"] += 1
            elif types[seed] == typed[1]:
                assert [sk[0][0] for sk in shown] == only_active * 2
            else:
                assert not shown  # no skill of this task type: all plain
        total = served["candidate"] + served["active"]
        assert total >= 10
        if share == 0.0:
            assert served["active"] == 0
        elif share == 1.0:
            assert served["candidate"] == 0
        else:
            assert 0.25 < served["active"] / total < 0.75
    assert pipe.plan(3, seeds, 4) == pipe.plan(3, seeds, 4)  # a pure function of (seed, iteration, bank)


def test_a_placement_skill_is_validated_and_shown_only_in_tasks_that_name_its_object(tmp_path: Path) -> None:
    """"WHEN you need a <thing> THEN ..." is paired only in groups whose task names the thing; a skill of the
    whole task type goes to the rest; evaluation with skills shows it only there too."""
    from siri.skills.pipeline import bank_skills_by_seed
    from siri.skills.validation import ACTIVE

    pipe = _pipeline(tmp_path, "siri.validation_share=0.5", "siri.active_share=0.0")
    seeds = list(range(300, 400))
    tasks = {s: pipe.task_of(s) for s in seeds}
    env = envs.make(pipe.cfg.env.name, **pipe.cfg.env.options_for())
    goals = {s: (env.reset(s).task_type, env.goal_object()) for s in seeds}
    task_type = goals[seeds[0]][0]
    thing = Counter(goal for tt, goal in goals.values() if tt == task_type).most_common(1)[0][0]
    placement = pipe.bank.add_candidates([f"WHEN you need {'an' if thing[0] in 'aeiou' else 'a'} {thing} THEN look "
                                          f"in the cabinet first"], task_type, 0, "trace")[0].id
    specs = pipe.plan(3, seeds, 4)
    shown = {s.seed for s in specs if s.skills and s.skills[0][0] == placement}
    naming = {s for s, (tt, goal) in goals.items() if tt == task_type and goal == thing}
    assert shown == naming and len(naming) >= 2, (thing, naming)
    general = pipe.bank.add_candidates(["WHEN the cabinet is closed THEN open it before you take from it"],
                                       task_type, 0, "trace")[0].id
    specs = pipe.plan(3, seeds, 4)
    by_skill = {sid: {s.seed for s in specs if s.skills and s.skills[0][0] == sid} for sid in (placement, general)}
    assert by_skill[general] | by_skill[placement] == {s for s, (tt, _) in tasks.items() if tt == task_type}
    for skill_id in (placement, general):
        pipe.bank.get(skill_id).status = ACTIVE
    skills_for = bank_skills_by_seed(pipe.bank, pipe.cfg.env.name, pipe.cfg.env.options_for(), top_k=5)
    for seed, (tt, _) in tasks.items():
        ids = {sid for sid, _ in skills_for(seed)}
        assert ids == (set() if tt != task_type else {general, placement} if seed in naming else {general}), seed


def test_a_placement_family_is_mined_as_one_candidate_and_shows_each_task_its_own_lines(tmp_path: Path) -> None:
    """siri.placement_family: a mining round's placement skills become one candidate (its other skills stay
    separate, K in all); a group is shown the family's line for its task's object, the rollout counts as one
    skill, and groups about objects the family does not know get other skills."""
    from siri.rollout.collector import RolloutConfig, collect
    from siri.skills.bank import lines_for
    from siri.skills.validation import collect_paired

    pipe = _pipeline(tmp_path, "siri.miner=trace", "siri.placement_family=true", "siri.max_skills_per_mine=3",
                     "siri.validation_share=0.5", "siri.active_share=0.0", "env.max_steps=30")
    env = envs.make("household", max_steps=30, task_types=["pick_and_place_simple"])
    pipe.buffer["pick_and_place_simple"] = [play(env, seed, 0, 0, 1.0, ()) for seed in range(40)]
    pipe.s.mine_trajectories = 40
    assert pipe.mine(1, policy=None) == 3  # type: ignore[arg-type]
    skills = pipe.bank.skills()
    families = [s for s in skills if "\n" in s.text]
    assert len(families) == 1 and len(skills) == 3
    lines = families[0].text.split("\n")
    assert len(lines) >= 3 and all(line.startswith("WHEN you need ") for line in lines)
    assert not any(s.text.startswith("WHEN you need ") for s in skills if s is not families[0])
    family = families[0].id
    seeds = [s for s in range(300, 420) if pipe.task_type_of(s) == "pick_and_place_simple"]
    specs = [spec for spec in pipe.plan(3, seeds, 4) if spec.skills and spec.skills[0][0] == family]
    assert specs, "no group was shown the family"
    for spec in specs:
        task = pipe.task_of(spec.seed)[1]
        assert [text for _, text in spec.skills] == lines_for(families[0].text, task)
        assert len(spec.skills) == 1 and spec.skills[0][1] in lines  # a pick-and-place task needs one thing
    fitting = {seed for seed in seeds if lines_for(families[0].text, pipe.task_of(seed)[1])}
    assert {spec.seed for spec in specs} <= fitting and len(fitting) < len(seeds)  # never where no line fits
    from micro_policy import micro_policy

    group = [spec for spec in pipe.plan(3, seeds, 4) if spec.group == specs[0].group]
    trajs = collect(micro_policy(seed=0, reference=False), "household", group, RolloutConfig(mode="choose", seed=0),
                    env_options={"max_steps": 3, "task_types": ["pick_and_place_simple"]})
    assert {t.skill_ids for t in trajs} == {(), (family,)}
    assert list(collect_paired(trajs)) == [family]


def test_internalization_with_the_gate_on_weights_only_valid_steps_of_helpful_active_skills(tmp_path: Path) -> None:
    """Hand-computed: w = 1[active] 1[valid] 1[U > 0] clip(A, 0, c), c = 0.5; lambda = 0.8 * (k - k0 + 1) / 4."""
    import numpy as np

    from siri.skills.validation import ACTIVE, CANDIDATE

    pipe = _pipeline(tmp_path)
    helpful, harmful, candidate = _bank_with(pipe, "pick_and_place_simple",
                                             [(ACTIVE, 0.3), (ACTIVE, -0.1), (CANDIDATE, 0.4)])
    pipe.internalization_from = 5

    def step(skills: tuple[str, ...], valid: bool = True) -> StepRecord:
        return StepRecord(group=0, traj=0, t=0, seed=1, task_type="pick_and_place_simple", prompt_ids=[1],
                          response_ids=[2], old_logprobs=[0.0], action_mask=[1], action="look", valid=valid,
                          reward=0.0, done=False, won=False, anchor=0, skill_ids=skills, plain_prompt_ids=[1])

    records = [step((helpful,)), step((helpful,)), step((helpful,)), step((helpful,), valid=False),
               step((harmful,)), step((candidate,)), step(()), step((helpful,))]
    advantages = np.array([0.2, 1.7, -0.4, 0.9, 0.8, 0.8, 0.8, 0.0])
    assert pipe.internalization(4, records, advantages) == ([], 0.0)  # before k0: nothing, lambda 0
    chosen, lam = pipe.internalization(6, records, advantages)
    assert lam == pytest.approx(0.8 * 2 / 4)
    assert chosen == [(0, pytest.approx(0.2)), (1, pytest.approx(0.5))]  # step 3: invalid; 7: A = 0
    _, lam_late = pipe.internalization(20, records, advantages)
    assert lam_late == pytest.approx(0.8)


def test_observe_counts_paired_zeros_and_collects_a_probe_that_checkpoints_carry(tmp_path: Path) -> None:
    """Paired metrics come from the differences ``observe`` records (this iteration's and the run's), and the
    probe keeps the run's first valid steps of active skills with their token ids, in RUN_DIR/probe.pt and in
    ``state``; a candidate's steps (never distilled) stay out of it."""
    import dataclasses

    from siri.skills.probe import load_probe
    from siri.skills.validation import ACTIVE

    pipe = _pipeline(tmp_path / "run", "siri.miner=trace", "siri.probe_steps=5", "siri.mine_every=100")
    env = envs.make("household", max_steps=4, task_types=["pick_and_place_simple"])
    (skill,) = _bank_with(pipe, "pick_and_place_simple", [(ACTIVE, 0.0)])
    pipe.bank.get(skill).utility = type(pipe.bank.get(skill).utility)()  # no evaluations yet

    def tokens(t: Trajectory) -> Trajectory:  # skill steps carry both prompts, as the collector records them
        t.steps = [dataclasses.replace(s, prompt_ids=[2, 1], plain_prompt_ids=[1], response_ids=[3, 4],
                                       action_mask=[0, 1], old_logprobs=[0.0, 0.0]) if s.uses_skills else s
                   for s in t.steps]
        return t

    def batch(iteration: int) -> list[Trajectory]:
        out = []
        for g in range(4):
            for k in range(4):
                out.append(tokens(play(env, 10 * iteration + g, g, 4 * g + k, 0.5, (skill,) if k < 2 else ())))
        return out

    first = batch(0)
    pipe.observe(0, first, policy=None)
    diffs = [d for _, d in pipe.bank.get(skill).evals]
    m = pipe.metrics()
    assert m["skills/paired_evals"] == m["skills/paired_evals_cumulative"] == len(diffs) == 4
    assert m["skills/paired_zero_share"] == sum(abs(d) <= 1e-9 for d in diffs) / 4
    assert m["skills/paired_mean"] == pytest.approx(sum(diffs) / 4)
    expected = [(s.seed, s.t) for t in first if t.uses_skills for s in t.steps if s.valid][:5]
    assert [(p["seed"], p["t"]) for p in pipe.probe_set] == expected
    assert all(p["plain_prompt_ids"] == [1] and p["action_mask"] == [0, 1] for p in pipe.probe_set)
    assert load_probe(tmp_path / "run")[0] == pipe.probe_set

    pipe.observe(1, batch(1), policy=None)
    diffs = [d for _, d in pipe.bank.get(skill).evals]
    m = pipe.metrics()
    assert m["skills/paired_evals"] == 4 and m["skills/paired_evals_cumulative"] == 8
    assert m["skills/paired_zero_share_cumulative"] == sum(abs(d) <= 1e-9 for d in diffs) / 8
    assert m["skills/paired_mean_cumulative"] == pytest.approx(sum(diffs) / 8)
    assert [(p["seed"], p["t"]) for p in pipe.probe_set] == expected  # full after iteration 0: fixed from then on

    # a checkpoint carries both; a resumed pipeline reports the same totals and measures the same probe
    checkpoint = tmp_path / "ckpt"
    pipe.bank.save(checkpoint / "skill_bank.json")
    (tmp_path / "run" / "probe.pt").unlink()
    resumed = _pipeline(tmp_path / "run", "siri.miner=trace", "siri.probe_steps=5", "siri.mine_every=100")
    resumed.load_state(pipe.state(), checkpoint)
    assert resumed.probe_set == pipe.probe_set and load_probe(tmp_path / "run")[0] == pipe.probe_set
    assert {k: v for k, v in resumed.metrics().items() if "cumulative" in k} == \
        {k: v for k, v in m.items() if "cumulative" in k}

    candidate = _pipeline(tmp_path / "candidate", "siri.miner=trace", "siri.probe_steps=5", "siri.mine_every=100")
    assert _bank_with(candidate, "pick_and_place_simple", [("candidate", 0.0)]) == [skill]
    candidate.observe(0, first, policy=None)
    assert candidate.probe_set == [] and not (tmp_path / "candidate" / "probe.pt").exists()

    off = _pipeline(tmp_path / "off", "siri.miner=trace", "siri.probe_every=0")
    off.bank.add_candidates(["WHEN you need a mug THEN look in the cabinets first"], "pick_and_place_simple", 0, "t")
    off.observe(0, first, policy=None)
    assert off.probe_set == [] and not (tmp_path / "off" / "probe.pt").exists()


def test_trace_style_reaches_the_trace_miner(tmp_path: Path) -> None:
    for style in ("sentences", "legacy"):
        pipe = _pipeline(tmp_path / style, "siri.miner=trace", f"siri.trace_style={style}")
        assert pipe.miner(None).style == style  # type: ignore[arg-type]
