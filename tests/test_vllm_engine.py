"""The vLLM backend's GPU-free parts: import guard, requests as plain data, output conversion, weight names."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from micro_policy import micro_policy
from siri.config import TrainConfig
from siri.rl.distributed import Dist
from siri.rl.trainer import make_engine
from siri.rollout.engine import row_seed, row_seeds
from siri.rollout.vllm_engine import (
    VLLM_INSTALL,
    EngineError,
    VLLMEngine,
    full_weights,
    generation_from_output,
    hf_to_vllm_name,
    hf_weight_name,
    prompt_inputs,
    sampling_kwargs,
)

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_importing_siri_never_imports_vllm() -> None:
    code = ("import sys, siri, siri.rl.trainer, siri.rollout.vllm_engine, siri.cli.train; "
            "print('vllm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_selecting_vllm_without_it_names_the_install_command() -> None:
    with pytest.raises(EngineError, match=r"pip install 'siri-rl\[vllm\]'") as info:
        VLLMEngine("/nonexistent", tokenizer=None)
    assert VLLM_INSTALL in str(info.value) and "rollout.engine=hf" in str(info.value)
    cfg = TrainConfig.load(None, ["rollout.engine=vllm", "model.action_mode=generate"])
    with pytest.raises(EngineError, match=r"siri-rl\[vllm\]"):
        make_engine(cfg, micro_policy(), Dist())


def test_vllm_with_choose_mode_is_a_clear_config_error() -> None:
    cfg = TrainConfig.load(None, ["rollout.engine=vllm", "model.action_mode=choose"])
    with pytest.raises(ValueError, match="action_mode=generate only"):
        make_engine(cfg, None, Dist())
    assert make_engine(TrainConfig.load(None, []), None, Dist()) is None  # hf: the collector's HFEngine


def test_sampling_kwargs_per_row() -> None:
    seeds = row_seeds(3, 7, None)
    rows = [sampling_kwargs(temperature=1.0, top_p=0.9, max_new_tokens=32, seed=s, stop_ids={5, 2}) for s in seeds]
    first = rows[0]
    assert first["logprobs"] == 0 and first["n"] == 1 and first["max_tokens"] == 32 and first["top_p"] == 0.9
    assert first["stop"] == ["</action>"] and first["include_stop_str_in_output"] is True
    assert first["stop_token_ids"] == [2, 5] and first["skip_special_tokens"] is False
    assert [r["seed"] for r in rows] == [row_seed(7, i) for i in range(3)]  # one seed per row: batch-independent
    assert len(set(seeds)) == 3
    # The collector's per-episode seeds pass through unchanged.
    own = [sampling_kwargs(temperature=1.0, top_p=1, max_new_tokens=4, seed=s) for s in row_seeds(2, 7, [123, 5])]
    assert [r["seed"] for r in own] == [123, 5]
    greedy = sampling_kwargs(temperature=0.0, top_p=0.5, max_new_tokens=4, seed=None)
    assert greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0 and "seed" not in greedy
    with pytest.raises(ValueError, match="max_new_tokens"):
        sampling_kwargs(temperature=1.0, top_p=1.0, max_new_tokens=0, seed=0)
    assert prompt_inputs([[1, 2], (3,)]) == [{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": [3]}]


def test_generation_from_output_fields() -> None:
    logprob = SimpleNamespace  # vLLM's Logprob has .logprob (and rank, decoded_token)
    lps = [{4: logprob(logprob=-0.5)}, {9: logprob(logprob=-1.25), 3: logprob(logprob=-0.1)}]
    gen = generation_from_output([4, 9], lps, "stop", "</action>")
    assert gen.response_ids == [4, 9] and gen.logprobs == [-0.5, -1.25] and gen.stop == "action"
    assert generation_from_output([4, 9], lps, "stop", 9, close_id=9).stop == "action"
    assert generation_from_output([4, 9], [{4: -0.5}, {9: -1.0}], "stop", None).stop == "eos"
    assert generation_from_output([4, 9], lps, "length", None).stop == "length"
    with pytest.raises(EngineError, match="logprobs=0"):
        generation_from_output([4], None, "stop", None)


def _layer_names(prefix: str) -> set[str]:
    """What vLLM's Llama-family model holds for one decoder layer (fused projections), by hand."""
    return {f"{prefix}.self_attn.qkv_proj.weight", f"{prefix}.self_attn.o_proj.weight",
            f"{prefix}.mlp.gate_up_proj.weight", f"{prefix}.mlp.down_proj.weight",
            f"{prefix}.input_layernorm.weight", f"{prefix}.post_attention_layernorm.weight"}


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_hf_to_vllm_weight_names(arch: str) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    common = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1)
    if arch == "llama":
        model, tied = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=False)), False
    else:
        model, tied = Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=True)), True
    architecture = type(model).__name__
    weights = dict(full_weights(model))
    assert ("lm_head.weight" in weights) != tied  # tied heads are not sent: vLLM shares the embedding
    mapped: dict[str, set] = {}
    for name in weights:
        target, shard = hf_to_vllm_name(name, architecture)
        mapped.setdefault(target, set()).add(shard)
    expected = {"model.embed_tokens.weight", "model.norm.weight", *_layer_names("model.layers.0"),
                *_layer_names("model.layers.1")}
    if not tied:
        expected.add("lm_head.weight")
    if arch == "qwen2":  # Qwen2 has q/k/v biases, fused like the weights
        expected |= {"model.layers.0.self_attn.qkv_proj.bias", "model.layers.1.self_attn.qkv_proj.bias"}
    assert set(mapped) == expected
    assert mapped["model.layers.0.self_attn.qkv_proj.weight"] == {"q", "k", "v"}
    assert mapped["model.layers.1.mlp.gate_up_proj.weight"] == {0, 1}
    assert mapped["model.layers.0.self_attn.o_proj.weight"] == {None}
    with pytest.raises(EngineError, match="no weight-name map"):
        hf_to_vllm_name("x.weight", "GPT2LMHeadModel")


def test_wrapped_and_lora_names_reduce_to_hf_names() -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    plain = {n for n, _ in full_weights(model)}
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    names = [n for n, _ in peft.named_parameters()]
    assert any(".lora_A." in n for n in names) and any(".base_layer." in n for n in names)
    assert {hf_weight_name(n) for n in names} - {None} == plain  # adapters travel separately
    assert hf_weight_name("module._orig_mod.model.norm.weight") == "model.norm.weight"  # DDP + compile
    assert hf_weight_name("model.layers.0.self_attn.rotary_emb.inv_freq") is None
    tensors = dict(full_weights(model))
    assert torch.equal(tensors["model.norm.weight"], model.model.norm.weight)
