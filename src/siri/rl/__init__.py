"""Reinforcement learning on collected steps: advantages, losses, log-prob scoring, the update, the loop.

``advantages`` (GRPO / GiGPO / RLOO, numpy), ``losses`` (PPO clip, KL, entropy and SIRI's internalization
loss on per-token tensors), ``scoring`` (per-token log-probs of recorded steps under a model), ``update``
(the PPO epochs over one batch), ``trainer`` (collect -> advantages -> update -> metrics, checkpoints) and
``distributed`` (data parallelism under torchrun).
"""
