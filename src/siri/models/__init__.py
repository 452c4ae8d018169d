"""What a model is: the ``Policy`` (policy.py), loading it from a name, a directory or a hub id, with LoRA
and GGUF conversion (loading.py), the word-level tokenizer of the tiny model (tokenizer.py), and the
registry of model names that training recipes build (registry.py). Training them is ``siri.sft``'s
and ``siri.rl``'s."""
