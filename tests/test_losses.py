"""PPO clip loss, k3 KL, entropy, token log-probs and micro-batch accumulation on tiny real tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from siri.rl.losses import (
    actor_loss,
    aggregate,
    entropy_from_logits,
    kl_low_var,
    loss_normalizer,
    masked_mean,
    ppo_clip_loss,
    token_logprobs,
)

LOG = math.log


def lp_pair(ratios: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """old = -1 everywhere; new = old + log(ratio), as a leaf that records gradients."""
    old = torch.full((1, len(ratios)), -1.0, dtype=torch.float64)
    new = (old + torch.tensor([[LOG(r) for r in ratios]], dtype=torch.float64)).requires_grad_(True)
    return new, old


def test_ppo_clip_hand_values_and_gradients():
    # Four tokens, clip 0.2, token-mean over the 4 masked tokens (a 5th token is masked out):
    #   r=1.5, A=+1: max(-1.5, -1.2) = -1.2 (clipped high, no gradient)
    #   r=0.5, A=+1: max(-0.5, -0.8) = -0.5 (unclipped: the pessimistic bound keeps the low ratio)
    #   r=0.5, A=-1: max( 0.5,  0.8) =  0.8 (clipped low, no gradient)
    #   r=1.5, A=-1: max( 1.5,  1.2) =  1.5 (unclipped)
    #   masked: r=9, A=5 would give -6 (clipped) -> must not count
    # loss = (-1.2 - 0.5 + 0.8 + 1.5) / 4 = 0.15
    new, old = lp_pair([1.5, 0.5, 0.5, 1.5, 9.0])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, 5.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    loss, stats = ppo_clip_loss(new, old, adv, mask)
    assert loss.item() == pytest.approx(0.15, abs=1e-12)
    assert stats["clip_frac"] == pytest.approx(0.5)
    assert stats["clip_frac_high"] == pytest.approx(0.25)
    assert stats["clip_frac_low"] == pytest.approx(0.25)
    assert stats["ratio_mean"] == pytest.approx(1.0)
    assert stats["ratio_max"] == pytest.approx(1.5)
    # approx_kl = mean((r - 1) - log r) = (2 * (0.5 - log 1.5) + 2 * (-0.5 - log 0.5)) / 4
    assert stats["approx_kl"] == pytest.approx((0.5 - LOG(1.5) - 0.5 - LOG(0.5)) / 2)
    loss.backward()
    # d/dlp of -A * r = -A * r, divided by the 4 tokens; clipped and masked tokens get exactly 0.
    assert new.grad[0].tolist() == pytest.approx([0.0, -0.5 / 4, 0.0, 1.5 / 4, 0.0], abs=1e-12)
    assert new.grad[0, 0].item() == 0.0 and new.grad[0, 2].item() == 0.0 and new.grad[0, 4].item() == 0.0


def test_asymmetric_clip_high():
    # r = 1.25, A = +1: symmetric 0.2 clips at 1.2 -> -1.2; clip_high 0.28 keeps -1.25.
    # r = 0.75, A = -1: clip_low 0.2 -> max(0.75, 0.8) = 0.8 either way.
    new, old = lp_pair([1.25, 0.75])
    adv = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    mask = torch.ones(1, 2, dtype=torch.float64)
    sym, _ = ppo_clip_loss(new, old, adv, mask)
    high, stats = ppo_clip_loss(new, old, adv, mask, clip_low=0.2, clip_high=0.28)
    assert sym.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert high.item() == pytest.approx((-1.25 + 0.8) / 2)
    assert stats["clip_frac_high"] == 0.0 and stats["clip_frac_low"] == pytest.approx(0.5)


def test_advantage_sign_moves_logprob_the_right_way():
    # Gradient descent on the loss must raise log-probs of positive-advantage tokens, lower negative ones.
    new, old = lp_pair([1.0, 1.0])
    loss, _ = ppo_clip_loss(new, old, torch.tensor([2.0]).double().expand(1), torch.ones(1, 2).double())
    loss.backward()
    assert (new.grad < 0).all()  # descent step -grad > 0: log-probs go up for A > 0
    new, old = lp_pair([1.0, 1.0])
    loss, _ = ppo_clip_loss(new, old, torch.tensor([-2.0]).double(), torch.ones(1, 2).double())
    loss.backward()
    assert (new.grad > 0).all()


def test_per_step_advantages_broadcast_and_seq_mean_aggregation():
    # Two sequences at ratio 1: loss per token = -A. Seq 0 has A=1 on 3 tokens, seq 1 A=-2 on 1 token.
    # token-mean = (-1 * 3 + 2 * 1) / 4 = -0.25; seq-mean-token-mean = ((-1) + (2)) / 2 = 0.5.
    lp = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    adv = torch.tensor([1.0, -2.0], dtype=torch.float64)
    tok, _ = ppo_clip_loss(lp, lp.detach(), adv, mask)
    seq, _ = ppo_clip_loss(lp, lp.detach(), adv, mask, agg="seq-mean-token-mean")
    assert tok.item() == pytest.approx(-0.25)
    assert seq.item() == pytest.approx(0.5)
    assert loss_normalizer(mask) == 4.0
    assert loss_normalizer([mask[:1], mask[1:]], "seq-mean-token-mean") == 2.0


def test_infinite_logprobs_off_the_mask_do_not_poison_loss_or_grad():
    # Padding positions can hold -inf (a constrained decoder) or NaN; they are off the mask.
    lp = torch.tensor([[-1.0, float("-inf"), float("nan")]], requires_grad=True)
    old = torch.tensor([[-1.0, float("-inf"), 0.0]])
    ref = torch.tensor([[-2.0, float("-inf"), float("nan")]])
    mask = torch.tensor([[1.0, 0.0, 0.0]])
    adv = torch.tensor([[1.0, float("nan"), 3.0]])
    loss, stats = actor_loss(lp, old, adv, mask, ref_logprobs=ref, kl_coef=0.5)
    loss.backward()
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in stats.values())
    assert torch.isfinite(lp.grad).all() and lp.grad[0, 1:].tolist() == [0.0, 0.0]


def test_kl_low_var_hand_values_and_clamp():
    # ref - lp = log 2 -> 2 - log 2 - 1 = 0.30685; = 0 -> 0; = -1 -> e^-1 + 1 - 1 = 0.36788;
    # = 5 -> e^5 - 6 = 142.4 -> clamped to 10 (and no gradient there).
    lp = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[LOG(2.0), 0.0, -1.0, 5.0]], dtype=torch.float64)
    kl = kl_low_var(lp, ref)
    assert kl.tolist()[0] == pytest.approx([1 - LOG(2.0), 0.0, math.exp(-1), 10.0])
    kl.sum().backward()
    # d/dlp (e^(ref-lp) - (ref-lp) - 1) = 1 - e^(ref-lp)
    assert lp.grad.tolist()[0] == pytest.approx([1 - 2.0, 0.0, 1 - math.exp(-1), 0.0])


def test_actor_loss_combines_terms():
    torch.manual_seed(0)
    lp = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    old = lp.detach() + 0.05 * torch.randn(2, 5, dtype=torch.float64)
    ref = lp.detach() + 0.3 * torch.randn(2, 5, dtype=torch.float64)
    ent = torch.rand(2, 5, dtype=torch.float64)
    adv = torch.randn(2, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float64)
    loss, stats = actor_loss(lp, old, adv, mask, ref_logprobs=ref, kl_coef=0.01, entropy=ent, entropy_coef=0.1)
    pg, _ = ppo_clip_loss(lp, old, adv, mask)
    expected = pg + 0.01 * masked_mean(kl_low_var(lp, ref), mask) - 0.1 * masked_mean(ent, mask)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    assert stats["pg_loss"] == pytest.approx(pg.item())
    assert stats["kl"] > 0 and 0 < stats["entropy"] < 1
    with pytest.raises(ValueError, match="needs ref_logprobs"):
        actor_loss(lp, old, adv, mask, kl_coef=0.01)
    with pytest.raises(ValueError, match="per-token tensors must be"):
        ppo_clip_loss(lp, old[:, :3], adv, mask)
    with pytest.raises(ValueError, match="valid: token-mean, seq-mean-token-mean"):
        aggregate(lp, mask, "sum")


def test_token_logprobs_equal_log_softmax_gather():
    torch.manual_seed(1)
    logits = torch.randn(3, 7, 50, requires_grad=True)
    labels = torch.randint(0, 50, (3, 7))
    labels[0, :2] = -100  # ignored positions give 0
    got = token_logprobs(logits, labels)
    want = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    want = torch.where(labels == -100, torch.zeros_like(want), want)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    g1 = torch.autograd.grad(got.sum(), logits)[0]
    g2 = torch.autograd.grad(want.sum(), logits)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)
    # Temperature divides the logits; bf16 logits are upcast.
    torch.testing.assert_close(token_logprobs(logits, labels, temperature=0.5),
                               token_logprobs(logits * 2.0, labels), rtol=1e-5, atol=1e-5)
    assert token_logprobs(logits.detach().bfloat16(), labels).dtype == torch.float32


def test_entropy_from_logits_chunked_matches_direct():
    torch.manual_seed(2)
    logits = torch.randn(2, 9, 33, dtype=torch.float64, requires_grad=True)
    p = torch.softmax(logits, -1)
    direct = -(p * torch.log_softmax(logits, -1)).sum(-1)
    chunked = entropy_from_logits(logits, chunk_size=4)  # 18 positions -> 5 checkpointed chunks
    torch.testing.assert_close(chunked, direct.float(), rtol=1e-5, atol=1e-6)
    g1 = torch.autograd.grad(chunked.sum(), logits)[0]
    g2 = torch.autograd.grad(direct.sum(), logits)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)
    uniform = entropy_from_logits(torch.zeros(4, 16))
    torch.testing.assert_close(uniform, torch.full((4,), math.log(16)))


class TinyPolicy(torch.nn.Module):
    def __init__(self, vocab: int = 11, dim: int = 8) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.mix = torch.nn.Linear(dim, dim)
        self.head = torch.nn.Linear(dim, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.mix(self.emb(ids))))


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_micro_batch_accumulation_equals_full_batch(agg):
    torch.manual_seed(3)
    model = TinyPolicy().double()
    B, T = 6, 5
    ids = torch.randint(0, 11, (B, T))
    labels = torch.randint(0, 11, (B, T))
    # Ragged masks: micro-batches hold different token counts, so per-micro-batch means would be wrong.
    mask = torch.zeros(B, T, dtype=torch.float64)
    for b, n in enumerate([5, 1, 3, 2, 4, 5]):
        mask[b, T - n:] = 1.0
    with torch.no_grad():
        old = token_logprobs(model(ids), labels) + 0.1 * torch.randn(B, T, dtype=torch.float64)
        ref = old + 0.2 * torch.randn(B, T, dtype=torch.float64)
    adv = torch.randn(B, dtype=torch.float64)

    def loss_of(sl: slice, normalizer: float | None) -> torch.Tensor:
        logits = model(ids[sl])
        loss, _ = actor_loss(token_logprobs(logits, labels[sl]), old[sl], adv[sl], mask[sl], ref_logprobs=ref[sl],
                             kl_coef=0.05, entropy=entropy_from_logits(logits), entropy_coef=0.01,
                             agg=agg, normalizer=normalizer)
        return loss

    model.zero_grad()
    full = loss_of(slice(0, B), None)
    full.backward()
    want = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    slices = [slice(0, 1), slice(1, 4), slice(4, 6)]
    normalizer = loss_normalizer([mask[s] for s in slices], agg)
    total = 0.0
    for s in slices:
        part = loss_of(s, normalizer)
        part.backward()
        total += part.item()
    assert total == pytest.approx(full.item(), rel=1e-12)
    for p, w in zip(model.parameters(), want, strict=True):
        torch.testing.assert_close(p.grad, w, rtol=1e-10, atol=1e-12)

    # Without the shared normalizer, micro-batch means are not the full-batch mean (the test can fail).
    model.zero_grad()
    naive = sum(loss_of(s, None).item() for s in slices) / len(slices)
    assert naive != pytest.approx(full.item(), rel=1e-6)


def test_fused_cross_entropy_is_what_token_logprobs_uses():
    # Sanity: F.cross_entropy(reduction="none") is the negated gathered log-softmax.
    logits = torch.randn(4, 6)
    labels = torch.randint(0, 6, (4,))
    ce = F.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(-ce, token_logprobs(logits.unsqueeze(0), labels.unsqueeze(0)).squeeze(0))
