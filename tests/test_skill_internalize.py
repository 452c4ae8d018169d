"""Internalization weights, loss and lambda schedule pinned on a hand-built batch."""

from __future__ import annotations

import math
import random

import pytest
import torch

from siri.rl.losses import internalization_loss
from siri.skills.internalize import internalization_weights, lambda_schedule, skill_utility

# Five steps: used skill?, utility of the shown skill, GiGPO advantage.
USED = torch.tensor([True, True, True, False, True])
UTIL = torch.tensor([0.5, -0.1, 0.3, 0.5, 0.2])
ADV = torch.tensor([2.0, 1.0, 0.5, 1.0, -1.0])
LOGP = torch.tensor(
    [
        [-1.0, -2.0, -0.5],
        [-0.1, -0.2, -0.3],
        [-4.0, -1.0, -9.0],
        [-1.0, -1.0, -1.0],
        [-2.0, -2.0, -2.0],
    ]
)
MASK = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 0], [1, 1, 1], [0, 1, 1]])


def test_weights_by_hand() -> None:
    # w = used * [U > 0] * clip(A, 0, 1): [1*1*1, 1*0*1, 1*1*0.5, 0, 1*1*0]
    assert internalization_weights(USED, UTIL, ADV, clip_c=1.0).tolist() == [1.0, 0.0, 0.5, 0.0, 0.0]
    assert internalization_weights(USED, UTIL, ADV, clip_c=3.0).tolist() == [2.0, 0.0, 0.5, 0.0, 0.0]
    assert internalization_weights(USED, UTIL, ADV, mode="utility").tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert internalization_weights(USED, UTIL, ADV, mode="uniform").tolist() == [1.0, 1.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="mode"):
        internalization_weights(USED, UTIL, ADV, mode="bogus")
    with pytest.raises(ValueError, match="equal length"):
        internalization_weights(USED, UTIL[:3], ADV)


def test_loss_by_hand() -> None:
    w = internalization_weights(USED, UTIL, ADV)
    # weighted steps 0 and 2: -(1.0*(-1 - 2) + 0.5*(-4 - 1)) = 5.5 over 2 + 2 masked tokens
    assert internalization_loss(LOGP, MASK, w).item() == pytest.approx(5.5 / 4)
    assert internalization_loss(LOGP, MASK, w, normalizer="tokens").item() == pytest.approx(5.5 / 12)
    assert internalization_loss(LOGP, MASK, w, normalizer=100).item() == pytest.approx(0.055)
    # uniform: steps 0,1,2,4: -(-3 - 0.6 - 5 - 4) = 12.6 over 2 + 3 + 2 + 2 tokens
    wu = internalization_weights(USED, UTIL, ADV, mode="uniform")
    assert internalization_loss(LOGP, MASK, wu).item() == pytest.approx(12.6 / 9)


def test_importance_correction_by_hand() -> None:
    w = internalization_weights(USED, UTIL, ADV)
    old = LOGP.clone()
    old[0, 0] = LOGP[0, 0] - math.log(2.0)  # ratio 2 -> clipped to 1.5
    old[0, 1] = LOGP[0, 1] - math.log(0.5)  # ratio 0.5
    logp = LOGP.clone().requires_grad_(True)
    loss = internalization_loss(logp, MASK, w, old_logp=old, rho_max=1.5)
    # -(1.0*(1.5*-1 + 0.5*-2) + 0.5*(-4 - 1)) / 4 = 5.0 / 4
    assert loss.item() == pytest.approx(1.25)
    loss.backward()
    expected = torch.zeros_like(LOGP)
    expected[0, 0], expected[0, 1] = -1.5 / 4, -0.5 / 4
    expected[2, 0], expected[2, 1] = -0.5 / 4, -0.5 / 4
    assert torch.allclose(logp.grad, expected)  # rho and w are detached: the gradient is -w*rho/N
    with pytest.raises(ValueError, match="old_logp"):
        internalization_loss(LOGP, MASK, w, rho_max=1.5)


def test_nothing_weighted_gives_connected_zero() -> None:
    logp = LOGP.clone().requires_grad_(True)
    loss = internalization_loss(logp, MASK, torch.zeros(5))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logp.grad, torch.zeros_like(LOGP))


def _reference_loss(logp, mask, used, util, adv, c, old, rho_max) -> float:
    """Slow scalar reference: nested loops straight from the formula."""
    total, count = 0.0, 0
    for b in range(len(logp)):
        w = (1.0 if used[b] else 0.0) * (1.0 if util[b] > 0 else 0.0) * min(max(adv[b], 0.0), c)
        for t in range(len(logp[b])):
            if not mask[b][t]:
                continue
            rho = min(max(math.exp(logp[b][t] - old[b][t]), 0.0), rho_max)
            total += w * rho * logp[b][t]
            count += 1 if w > 0 else 0
    return -total / count if count else 0.0


def test_matches_slow_reference_on_random_batches() -> None:
    rng = random.Random(0)
    for _ in range(20):
        b, t = rng.randint(1, 6), rng.randint(1, 7)
        logp = [[-rng.uniform(0, 5) for _ in range(t)] for _ in range(b)]
        old = [[x + rng.uniform(-1, 1) for x in row] for row in logp]
        mask = [[rng.random() < 0.7 for _ in range(t)] for _ in range(b)]
        used = [rng.random() < 0.7 for _ in range(b)]
        util = [rng.uniform(-1, 1) for _ in range(b)]
        adv = [rng.uniform(-2, 2) for _ in range(b)]
        w = internalization_weights(torch.tensor(used), torch.tensor(util), torch.tensor(adv), clip_c=1.5)
        got = internalization_loss(torch.tensor(logp), torch.tensor(mask), w, torch.tensor(old), rho_max=2.0)
        assert got.item() == pytest.approx(
            _reference_loss(logp, mask, used, util, adv, 1.5, old, 2.0), abs=1e-5
        )


def test_lambda_schedule() -> None:
    assert [
        lambda_schedule(k, k0=10, ramp_iters=4, lambda_max=0.2) for k in (0, 9, 10, 11, 13, 50)
    ] == pytest.approx([0.0, 0.0, 0.05, 0.1, 0.2, 0.2])
    assert lambda_schedule(5, k0=5, ramp_iters=0, lambda_max=0.3) == 0.3
    with pytest.raises(ValueError, match="lambda_max"):
        lambda_schedule(5, 0, 1, -1.0)


def test_skill_utility() -> None:
    assert skill_utility((), {}) == 0.0
    assert skill_utility(("s1", "s2"), {"s1": 0.5, "s2": -0.1}) == pytest.approx(0.2)
    with pytest.raises(KeyError, match="s3"):
        skill_utility(("s3",), {"s1": 0.5})


def test_step_weights_from_records() -> None:
    from siri.rollout.types import StepRecord
    from siri.skills.internalize import step_weights

    def step(skills: tuple[str, ...]) -> StepRecord:
        return StepRecord(group=0, traj=0, t=0, seed=0, task_type="x", prompt_ids=[1], response_ids=[2],
                          old_logprobs=[-1.0], action_mask=[1], action="a", valid=True, reward=0.0, done=False,
                          won=False, anchor=0, skill_ids=skills)  # fmt: skip

    steps = [step(("s1",)), step(("s2",)), step(("s1", "s2")), step(())]
    w = step_weights(steps, [2.0, 1.0, 0.5, 1.0], {"s1": 0.5, "s2": -0.1})
    # s1: U 0.5 -> clip(2,0,1)=1; s2: U<0 -> 0; both: U=0.2 -> 0.5; plain: 0
    assert w.tolist() == [1.0, 0.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="3 advantages for 4 steps"):
        step_weights(steps, [1.0, 1.0, 1.0], {"s1": 0.5, "s2": -0.1})


def test_plain_scoring_refuses_a_skill_step_without_its_plain_prompt() -> None:
    """Scored under the skill prompt instead, internalization would distil nothing and say nothing."""
    from micro_policy import micro_policy
    from siri.rl.scoring import response_logprobs
    from siri.rollout.types import StepRecord

    policy = micro_policy(seed=0, reference=False)

    def record(plain_prompt: list[int] | None) -> StepRecord:
        return StepRecord(group=0, traj=0, t=0, seed=1, task_type="pick_and_place_simple", prompt_ids=[5, 6, 7, 8],
                          response_ids=[9, 10], old_logprobs=[0.0, 0.0], action_mask=[1, 1], action="look",
                          valid=True, reward=0.0, done=False, won=False, anchor=0, skill_ids=("s1",),
                          plain_prompt_ids=plain_prompt)

    logp, _, _ = response_logprobs(policy.model, [record([5, 8])], pad_id=policy.pad_id, plain=True)
    skill_logp, _, _ = response_logprobs(policy.model, [record([5, 8])], pad_id=policy.pad_id, plain=False)
    assert logp.shape == (1, 2) and not torch.allclose(logp, skill_logp)  # the plain prompt is what is scored
    with pytest.raises(ValueError, match="plain_prompt_ids"):
        response_logprobs(policy.model, [record([5, 8]), record(None)], pad_id=policy.pad_id, plain=True)


def test_without_reasoning_keeps_only_the_action_part_of_a_generated_response() -> None:
    """distill_context=action: the skill-time reasoning leaves the sequence; the action tokens stay as sampled."""
    from micro_policy import micro_policy
    from siri.rollout.collector import action_token_mask
    from siri.rollout.types import StepRecord
    from siri.skills.internalize import without_reasoning

    tok = micro_policy(seed=0, reference=False).tokenizer
    ids = tok.encode("<think> the mug is in a cabinet </think> <action> go to cabinet 1 </action>",
                     add_special_tokens=False)
    mask = action_token_mask(tok, ids)
    record = StepRecord(group=0, traj=0, t=0, seed=1, task_type="pick_and_place_simple", prompt_ids=[5],
                        response_ids=ids, old_logprobs=[-0.1 * k for k in range(len(ids))], action_mask=mask,
                        action="go to cabinet 1", valid=True, reward=0.0, done=False, won=False, anchor=0,
                        skill_ids=("s1",), plain_prompt_ids=[5])
    cut = without_reasoning(record, tok)
    assert tok.decode(cut.response_ids).startswith("<action>")
    assert [i for i, m in zip(cut.response_ids, cut.action_mask, strict=True) if m] == \
        [i for i, m in zip(ids, mask, strict=True) if m]  # the same action tokens carry the loss
    assert cut.old_logprobs == record.old_logprobs[len(ids) - len(cut.response_ids):]
    assert sum(cut.action_mask) == 4 and len(cut.response_ids) < len(ids)
    action_only = tok.encode("<action> go to cabinet 1 </action>", add_special_tokens=False)
    unchanged = without_reasoning(
        StepRecord(**{**record.__dict__, "response_ids": action_only, "action_mask": action_token_mask(tok, action_only),
                      "old_logprobs": [0.0] * len(action_only)}), tok)
    assert unchanged.response_ids == action_only  # nothing before the tag: nothing to drop
