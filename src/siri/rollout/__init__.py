"""Playing episodes with a policy: prompts, action parsing, the choose-mode trie, generation engines, the
multi-turn collector and its sampling config, step records, and evaluation with its metrics."""
