"""Mining -> paired validation -> promotion/retirement on the real household environment.

No model here: a scripted agent plays household episodes and follows the expert with a probability
that depends on which skill its prompt shows (helpful, harmful, or no effect). The skill texts are
real (mined by the trace miner from the agent's own plain successes); everything from the validation
plan to the bank's decisions is the production code path.
"""

from __future__ import annotations

import random
from pathlib import Path

from siri import envs
from siri.rollout.types import StepRecord, Trajectory
from siri.skills.bank import SkillBank
from siri.skills.miners import TraceMiner
from siri.skills.validation import assign_validation

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
    texts = TraceMiner().mine("pick_and_place_simple", warm, max_skills=3)
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
        bank.update_status(iteration, min_evals=4, max_evals=24)
        bank.save()

    bank = SkillBank.open(tmp_path)  # the decisions survive a reload
    assert bank.get(helpful).status == "active" and bank.get(helpful).reason.startswith("LCB > 0")
    assert bank.get(harmful).status == "retired" and bank.get(harmful).reason.startswith("UCB <= 0")
    assert bank.get(neutral).status != "active"
    assert bank.get(helpful).utility.mean > 0.2 > -0.2 > bank.get(harmful).utility.mean
    assert bank.render_block("pick_and_place_simple") == f"- {bank.get(helpful).text}"


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
