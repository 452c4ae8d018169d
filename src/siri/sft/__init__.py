"""Supervised training: the searching, noisy demonstrator (demonstrator.py), the warm start on its episodes
(warm_start.py, settings in config.py), and the tiny model's recipe built with it (tiny.py). These drive
environments, prompts and miners, so they sit above ``siri.models``, which names the tiny model only by string."""
