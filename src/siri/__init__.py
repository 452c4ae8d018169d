"""SIRI: Self-Internalizing Reinforcement learning with Intrinsic skills, for long-horizon LLM agents."""

__version__ = "0.1.0"
