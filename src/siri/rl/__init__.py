"""GRPO/GiGPO advantages, PPO-style losses, configs and the training loop."""
