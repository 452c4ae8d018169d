"""The supervised warm start on a real (micro) model: it learns the demonstrator, LoRA merges, the CLI saves a loadable model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from micro_policy import MICRO_TINY
from siri.cli import app
from siri.models.loading import load_policy
from siri.models.tiny import build_tiny
from siri.models.warm_start import REPORT_FILE, WarmStartConfig, warm_start_examples, warm_start_policy
from siri.rollout.engine import left_pad

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
                                   policy.tokenizer, lambda m: None)
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
    result = runner.invoke(app, ["model", "warm-start", str(tiny_dir), "--out", str(out), "--episodes", "3", "--steps", "3",
                                 "--mining-examples", "1", "--max-steps", "10", "-o", "clutter=0", "--lora-r", "2"])
    assert result.exit_code == 0, result.output
    assert "loss" in result.output and (out / REPORT_FILE).exists()
    evaluated = runner.invoke(app, ["eval", "--model", str(out), "--episodes", "2", "--max-steps", "3", "-o", "clutter=0",
                                    "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["episodes"] == 2

    unknown = runner.invoke(app, ["model", "warm-start", str(tiny_dir), "--out", str(tmp_path / "x"), "--env", "kitchen"])
    assert unknown.exit_code != 0 and "kitchen" in unknown.output and "household" in unknown.output
    bad_option = runner.invoke(app, ["model", "warm-start", str(tiny_dir), "--out", str(tmp_path / "x"), "-o", "clutter=3"])
    assert bad_option.exit_code != 0 and "clutter" in bad_option.output
    assert not (tmp_path / "x").exists()
