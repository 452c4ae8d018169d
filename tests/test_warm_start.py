"""The supervised warm start on a real (micro) model: it learns the demonstrator, LoRA merges, the CLI saves a loadable model."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from micro_policy import MICRO_TINY
from siri.cli import app
from siri.envs import Observation
from siri.envs.household import world
from siri.models.loading import load_policy
from siri.rollout.engine import left_pad
from siri.sft.config import PRETRAINED, WarmStartConfig
from siri.sft.demonstrator import make_env, matching_twin, noisy_episode
from siri.sft.tiny import build_tiny
from siri.sft.warm_start import (
    REPORT_FILE,
    STOP_WINDOW,
    WarmStartData,
    train_warm_start,
    warm_start_examples,
    warm_start_policy,
)

LITE = {"clutter": 0.0, "task_types": ["look_at_obj_in_light"]}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("warm") / "tiny"
    build_tiny(MICRO_TINY, out)
    return out


def target_nll(model: torch.nn.Module, examples: list[tuple[list[int], list[int]]], pad_id: int) -> float:
    """Mean negative log-likelihood of the target tokens given their prompts (teacher forcing)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for prompt, target in examples:
            ids, mask, positions = left_pad([prompt + target], pad_id, "cpu")
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[0, :-1], -1)
            rows = torch.arange(len(prompt) - 1, len(prompt) + len(target) - 1)
            total -= logp[rows, torch.tensor(target)].sum().item()
            count += len(target)
    return total / count


def test_lora_warm_start_learns_the_demonstrator_and_saves_a_plain_model(tiny_dir: Path, tmp_path: Path) -> None:
    policy = load_policy(str(tiny_dir), lora=True, lora_r=4, reference=False)
    base = {k: v.clone() for k, v in policy.model.get_base_model().state_dict().items() if "lora_" not in k}
    config = WarmStartConfig(env="household", seed=5, sft_episodes=8, mining_examples=2, train_steps=30, batch_size=4,
                             lr=3e-2, warmup_steps=2, max_steps=12, env_options=LITE,
                             prompt_lm_weight=0.5, prompt_lm_positions=8)  # the sampled-positions path, through peft
    held_out = warm_start_examples(WarmStartConfig(**{**config.__dict__, "seed": 99, "sft_episodes": 3, "mining_examples": 0}),
                                   policy.tokenizer, lambda m: None).examples
    before = target_nll(policy.model, held_out, policy.pad_id)
    trained, report = warm_start_policy(policy, config, tmp_path / "warm")
    after = target_nll(trained.model, held_out, trained.pad_id)
    assert after < before - 0.1, (before, after)  # unseen demonstrations (another seed) are likelier
    assert not trained.lora and trained.env == "household" and report["examples"] > 0
    assert report["trained_parameters"] < sum(v.numel() for v in base.values())  # adapters only
    merged = trained.model.state_dict()
    changed = [k for k, v in base.items() if not torch.equal(v, merged[k.replace(".base_layer", "")])]
    assert changed, "the adapters were not merged into the weights"

    reloaded = load_policy(str(tmp_path / "warm"), reference=False)
    assert not reloaded.lora and reloaded.action_mode == trained.action_mode
    assert target_nll(reloaded.model, held_out, reloaded.pad_id) == pytest.approx(after, abs=1e-5)
    saved = json.loads((tmp_path / "warm" / REPORT_FILE).read_text())
    assert saved["config"]["env_options"] == LITE and len(saved["losses"]) == config.train_steps


def test_warm_start_cli_writes_a_model_that_siri_eval_runs(tiny_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "not-yet" / "cli-warm"  # its parent is created, as runs/ in a fresh clone
    result = runner.invoke(app, ["model", "warm-start", str(tiny_dir), "--out", str(out), "sft_episodes=3",
                                 "train_steps=3", "mining_examples=1", "max_steps=10", "-o", "clutter=0", "lora_r=2",
                                 "warmup_steps=1"])
    assert result.exit_code == 0, result.output
    assert "loss" in result.output and (out / REPORT_FILE).exists()
    # the key=value settings and -o reach WarmStartConfig by field name, on top of the pretrained-LM defaults
    expected = PRETRAINED.with_overrides(["sft_episodes=3", "train_steps=3", "mining_examples=1", "max_steps=10",
                                          "env_options.clutter=0", "lora_r=2", "warmup_steps=1"])
    saved = json.loads((out / REPORT_FILE).read_text())
    assert saved["config"] == json.loads(json.dumps(dataclasses.asdict(expected)))
    assert (expected.train_steps, expected.lora, expected.lora_r, expected.env_options) == (3, True, 2, {"clutter": 0})
    assert len(saved["losses"]) == 3
    evaluated = runner.invoke(app, ["eval", "--model", str(out), "episodes=2", "max_steps=3", "-o", "clutter=0", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["episodes"] == 2

    unknown = runner.invoke(app, ["model", "warm-start", str(tiny_dir), "--out", str(tmp_path / "x"), "--env", "kitchen"])
    assert unknown.exit_code != 0 and "kitchen" in unknown.output and "household" in unknown.output
    bad_option = runner.invoke(app, ["model", "warm-start", str(tiny_dir), "--out", str(tmp_path / "x"), "-o", "clutter=3"])
    assert bad_option.exit_code != 0 and "clutter" in bad_option.output
    assert not (tmp_path / "x").exists()


# --- matching twins ----------------------------------------------------------------------------------------

def decision_state(text: str, admissible: tuple[str, ...], task: str = "put some mug in shelf.") -> Observation:
    return Observation(text=text, task=task, task_type="pick_and_place_simple", admissible_actions=admissible, anchor=0)


def test_matching_twin_of_a_take_asks_for_an_absent_object_and_searches_on() -> None:
    obs = decision_state("You arrive at desk 1. On the desk 1, you see a mug 1, and a pen 2.",
                         ("go to desk 2", "go to shelf 1", "take mug 1 from desk 1", "take pen 2 from desk 1"))
    twin = matching_twin(obs, "take mug 1 from desk 1", "mug", ["apple", "mug", "pen"], {"desk 2"}, random.Random(0))
    # The only object word neither asked for nor in view is "apple"; the only unvisited place is shelf 1.
    assert twin == ("put some apple in shelf.", "go to shelf 1")


def test_matching_twin_of_a_search_asks_for_an_object_in_view_and_takes_it() -> None:
    obs = decision_state("You arrive at desk 1. On the desk 1, you see a pen 2.",
                         ("go to desk 2", "take pen 2 from desk 1"))
    assert matching_twin(obs, "go to desk 2", "mug", ["mug", "pen"], set(), random.Random(0)) == (
        "put some pen in shelf.", "take pen 2 from desk 1")


@pytest.mark.parametrize(("admissible", "label", "why"), [
    (("go to desk 2", "move mug 1 to desk 1", "take pen 2 from desk 1"), "go to desk 2", "something is held"),
    (("go to desk 2", "take mug 1 from desk 1"), "go to desk 2", "walked past the task's object (noise)"),
    (("go to desk 2", "take pen 2 from desk 1"), "take pen 2 from desk 1", "took another object (noise)"),
    (("go to desk 2", "look"), "go to desk 2", "nothing to take"),
])
def test_matching_twin_skips_states_that_are_no_clean_decision(admissible: tuple[str, ...], label: str, why: str) -> None:
    obs = decision_state("You arrive at desk 1.", admissible)
    assert matching_twin(obs, label, "mug", ["apple", "mug", "pen"], set(), random.Random(0)) is None, why


def test_matching_twins_follow_the_demonstrators_rule_in_real_episodes() -> None:
    """On real demonstrations, every twin changes only the task's object word, and its label is admissible:
    a take of the new object exactly when that object is in view, an honest search step otherwise."""
    config = WarmStartConfig()
    env = make_env(config, "train")
    rng = random.Random(5)
    kinds = sorted(world.OBJECT_NAMES)
    twins = 0
    for seed in range(30):
        episode = noisy_episode(env, seed, rng, 0.1, 1.0, 0.05)
        assert episode.goal_object is not None and episode.goal_object in episode.observations[0].task
        visited: set[str] = set()
        for obs, action, label in zip(episode.observations, episode.actions, episode.expert_actions, strict=True):
            twin = matching_twin(obs, label, episode.goal_object, kinds, visited, rng)
            if twin is not None:
                twins += 1
                task, twin_label = twin
                assert twin_label in obs.admissible_actions
                changed = [(a, b) for a, b in zip(obs.task.split(), task.split(), strict=True) if a != b]
                assert len(changed) == 1 and changed[0][0].strip(".") == episode.goal_object
                new_goal = changed[0][1].strip(".")
                in_view = any(a.split()[:2] == ["take", new_goal] for a in obs.admissible_actions)
                assert twin_label.split()[:2] == ["take", new_goal] if in_view else twin_label.startswith(("go to ", "open "))
            if action.startswith("go to "):
                visited.add(action[6:])
    assert twins >= 30


def test_warm_start_adds_twins_only_when_asked(tiny_dir: Path) -> None:
    tokenizer = load_policy(str(tiny_dir), reference=False).tokenizer
    config = WarmStartConfig(sft_episodes=8, mining_examples=0)
    plain = warm_start_examples(config, tokenizer, lambda m: None).examples
    with_twins = warm_start_examples(dataclasses.replace(config, matching_twins=1.0), tokenizer, lambda m: None).examples
    assert len(with_twins) > len(plain)
    # Every original example is still there, in order; the twins are the extra ones.
    originals = iter(with_twins)
    assert all(any(example == other for other in originals) for example in plain)


def test_trace_style_changes_the_skill_texts_and_only_when_asked(tiny_dir: Path) -> None:
    """``trace_style``: "legacy" (the default) keeps the texts the published tiny models were built on, and
    stays out of their cache key; "sentences" teaches the clean sentences, every word in the vocabulary."""
    from siri.sft.tiny import TinyConfig, default_config

    assert WarmStartConfig().trace_style == "legacy" and default_config("household").trace_style == "legacy"
    assert TinyConfig().key() != dataclasses.replace(TinyConfig(), trace_style="sentences").key()
    tokenizer = load_policy(str(tiny_dir), reference=False).tokenizer
    config = WarmStartConfig(sft_episodes=12, mining_examples=6, skill_prompt_share=0.0)
    legacy = warm_start_examples(config, tokenizer, lambda m: None).examples
    sentences = warm_start_examples(dataclasses.replace(config, trace_style="sentences"), tokenizer, lambda m: None).examples
    assert len(legacy) == len(sentences)
    changed = [(a, b) for a, b in zip(legacy, sentences, strict=True) if a != b]
    assert changed and all(a[0] == b[0] for a, b in changed)  # same prompts: only the mining answers differ
    for _, (_, target) in changed:
        text = tokenizer.decode(target, skip_special_tokens=True)
        assert tokenizer.unk_token_id not in target and "first find and take" in text, text


def test_focus_steps_train_on_the_focus_examples_first() -> None:
    """Two answers to one prompt: 1 in the focus examples, 2 in the other nine tenths. A focus phase
    learns 1, and one step on every example after it does not undo that; without focus the same number of
    steps learns the majority, 2."""
    from transformers import LlamaConfig, LlamaForCausalLM

    examples = [([5, 6, 7], [1]) for _ in range(10)] + [([5, 6, 7], [2]) for _ in range(90)]
    data = WarmStartData(examples, focus=[list(range(10))])

    def answer(focus_steps: int, train_steps: int, target: float = 0.0) -> tuple[int, int]:
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                             num_key_value_heads=2, intermediate_size=32, pad_token_id=0))
        config = WarmStartConfig(train_steps=train_steps, focus_steps=focus_steps, batch_size=4, warmup_steps=1,
                                 prompt_lm_weight=0.0, focus_loss_target=target)
        losses = train_warm_start(model, data, config, pad_id=0, log=lambda m: None)
        with torch.no_grad():
            return int(model(input_ids=torch.tensor([[5, 6, 7]])).logits[0, -1].argmax()), len(losses)

    assert answer(40, 1) == (1, 41) and answer(0, 41) == (2, 41)
    # With a loss target the focus phase ends once the mean of its last STOP_WINDOW losses is below it.
    answered, steps = answer(5000, 1, target=0.05)
    assert answered == 1 and STOP_WINDOW + 1 <= steps < 5001
