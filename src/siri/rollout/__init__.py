"""Prompts, action parsing, generation backends and the multi-turn rollout collector."""
