"""Policies: Hugging Face causal LMs (full or LoRA), GGUF conversion, and the tiny built-in model."""
