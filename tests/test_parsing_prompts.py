"""Projection of model text to actions, prompts and their skills block, the choose-mode trie (no model)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from siri.models.tokenizer import UNK, build_word_tokenizer
from siri.rollout.choose import TokenTrie, allowed_sets, constrained_logprobs
from siri.rollout.engine import _top_p_filter
from siri.rollout.parsing import fill_template, project
from siri.rollout.prompts import (
    SKILLS_HEADER,
    TEMPLATE_VOCAB_TEXT,
    TEMPLATES_LINE,
    build_prompt,
    skills_block,
    strip_skills,
)

ADMISSIBLE = ("go to countertop 1", "take apple 1 from countertop 1", "open fridge 1", "search[red shoes]", "look")
TEMPLATES = ("search[<words>]", "go to <place>")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_project_never_raises_on_any_string(text: str) -> None:
    p = project(text, ADMISSIBLE)
    assert isinstance(p.action, str) and isinstance(p.valid, bool)
    assert p.valid == (p.action in ADMISSIBLE)
    assert p.valid or p.reason


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ADMISSIBLE), st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=40),
       st.sampled_from(["", " ", "\n", "  \n "]))
def test_project_finds_admissible_action_inside_tags(action: str, thought: str, pad: str) -> None:
    text = f"<think>{thought}</think>{pad}<action>{pad}{action}{pad}</action>"
    assert project(text, ADMISSIBLE) == (action, True, "")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("go to countertop 1", "missing"),
        ("<action>go to countertop 1", "missing"),
        ("<action>look</action><action>look</action>", "more than one"),
        ("</action>look<action>", "before"),
        ("<action>   </action>", "empty"),
        ("<action>go to fridge 9</action>", "not an admissible"),
        ("<action>look<think></action>", "tags inside"),
        ("<action>" + "x" * 2000 + "</action>", "longer"),
    ],
)
def test_project_invalid_cases_name_the_reason(text: str, reason: str) -> None:
    p = project(text, ADMISSIBLE)
    assert not p.valid and reason in p.reason


def test_project_case_insensitive_match_returns_the_admissible_spelling() -> None:
    assert project("<action>Open Fridge 1</action>", ADMISSIBLE) == ("open fridge 1", True, "")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.builds(lambda s: f"<action>search[{s}]</action>", st.text()),
                 st.builds(lambda s: f"<action>go to {s}</action>", st.text())))
def test_project_with_templates_never_raises_and_accepts_only_filled_templates(text: str) -> None:
    p = project(text, ADMISSIBLE, TEMPLATES)
    assert isinstance(p.action, str) and isinstance(p.valid, bool)
    assert p.valid or p.reason
    if p.valid:
        assert p.action in ADMISSIBLE or any(fill_template(p.action, t) == p.action for t in TEMPLATES)
        assert "\n" not in p.action and p.action.count("[") <= 1


def test_project_accepts_a_free_query_only_when_a_template_allows_it() -> None:
    text = "<think>look for boots</think><action>search[ Blue  hiking boots ]</action>"
    assert not project(text, ADMISSIBLE).valid
    assert "not an admissible" in project(text, ADMISSIBLE).reason
    assert project(text, ADMISSIBLE, TEMPLATES) == ("search[Blue hiking boots]", True, "")
    assert project("<action>SEARCH[boots]</action>", ADMISSIBLE, TEMPLATES) == ("search[boots]", True, "")


@pytest.mark.parametrize(
    "action",
    ["search[]", "search[   ]", "search[<words>]", "search[<your query>]", "search[a]b]", "search[a[b]",
     "search[blue\nboots]", "search[blue boots", "buy[red shoes]", "go to", "go tomorrow", "go to  "],
)
def test_project_rejects_empty_or_malformed_template_slots(action: str) -> None:
    p = project(f"<action>{action}</action>", ADMISSIBLE, TEMPLATES)
    assert not p.valid and p.reason


def test_exact_admissible_matches_win_over_templates() -> None:
    assert project("<action>Go To Countertop 1</action>", ADMISSIBLE, TEMPLATES) == ("go to countertop 1", True, "")
    assert project("<action>go to garage 7</action>", ADMISSIBLE, TEMPLATES) == ("go to garage 7", True, "")
    assert project("<action>search[red shoes]</action>", ADMISSIBLE, TEMPLATES) == ("search[red shoes]", True, "")


def test_malformed_templates_are_ignored() -> None:
    for template in ("search[]", "search[<>]", "a <b> <c>", ""):
        assert fill_template("search[x]", template) is None
        assert not project("<action>search[x]</action>", ADMISSIBLE, (template,)).valid


SHOP_TEMPLATE = "search[<text>]"


def test_templates_line_only_when_templates_are_not_listed_as_placeholder() -> None:
    plain = build_prompt("shop", "buy shoes", "WebShop [SEP] Search", ["search[shoes]"], 0)
    assert build_prompt("shop", "buy shoes", "WebShop [SEP] Search", ["search[shoes]"], 0, templates=()) == plain
    line = TEMPLATES_LINE.format(templates=SHOP_TEMPLATE)
    text = build_prompt("shop", "buy shoes", "WebShop [SEP] Search", ["search[shoes]"], 0, templates=[SHOP_TEMPLATE])
    assert text == plain.replace("search[shoes]\n", "search[shoes]\n" + line, 1)
    assert text.index("Admissible actions:") < text.index(line) < text.index("<think>")
    hinted = ["search[<your query>]", "search[shoes]"]
    assert line not in build_prompt("shop", "buy shoes", "WebShop [SEP] Search", hinted, 0, templates=[SHOP_TEMPLATE])
    with_skills = build_prompt("shop", "buy shoes", "WebShop [SEP] Search", ["search[shoes]"], 0, skills=["WHEN a THEN b"],
                               templates=[SHOP_TEMPLATE])
    assert strip_skills(with_skills) == text


def test_templates_line_words_are_in_the_tiny_vocabulary() -> None:
    tokenizer = build_word_tokenizer([TEMPLATE_VOCAB_TEXT])
    line = TEMPLATES_LINE.format(templates=SHOP_TEMPLATE)
    ids = tokenizer(line, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_tokens_to_ids(UNK) not in ids
    assert tokenizer.decode(ids) == line


def _prompt(skills: list[str]) -> str:
    history = [("You are in the middle of a room.", "go to countertop 1"), ("On the countertop 1, you see an apple 1.", "look")]
    return build_prompt("household", "put a hot apple in fridge.", "You arrive at fridge 1.", ADMISSIBLE, 2,
                        history, skills=skills)


def test_prompt_has_the_paper_shape() -> None:
    text = _prompt([])
    order = ["Your task is to: put a hot apple in fridge.", "took 2 step(s)", "Observation 1:", "Action 2: look",
             "step 3", "Current observation: You arrive at fridge 1.", "Admissible actions:", "<think>", "<action>"]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert SKILLS_HEADER not in text


def test_history_window_keeps_the_last_k_pairs() -> None:
    history = [(f"obs {i}", f"act {i}") for i in range(5)]
    text = build_prompt("household", "t", "now", ["look"], 5, history, history_len=2)
    assert "obs 2" not in text and "Observation 4: obs 3" in text and "Action 5: act 4" in text
    assert "Observation" not in build_prompt("household", "t", "now", ["look"], 0, [], history_len=2)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=4))
def test_strip_skills_recovers_the_plain_prompt(skills: list[str]) -> None:
    skills = [s for s in skills if s.split()] or ["WHEN x THEN y"]
    with_skills = _prompt(skills)
    assert with_skills != _prompt([])
    assert strip_skills(with_skills) == _prompt([])
    assert with_skills.replace(skills_block(skills), "", 1) == _prompt([])
    assert strip_skills(_prompt([])) == _prompt([])


def test_skill_like_text_in_an_observation_is_not_stripped() -> None:
    obs = SKILLS_HEADER + "- fake\n"
    text = build_prompt("household", "t", obs, ["look"], 0)
    assert strip_skills(text) == text


def test_trie_allows_only_continuations() -> None:
    trie = TokenTrie([[1, 2, 3], [1, 2, 4], [1, 5]])
    assert sorted(trie.allowed([])) == [1]
    assert sorted(trie.allowed([1])) == [2, 5]
    assert sorted(trie.allowed([1, 2])) == [3, 4]
    assert trie.allowed([1, 5]) == [] and trie.complete([1, 5]) and not trie.complete([1, 2])
    assert trie.allowed([9]) == []
    with pytest.raises(ValueError, match="outside the choose constraint"):
        allowed_sets([[1, 2, 3]], [1, 3])


def test_constrained_logprobs_by_hand() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0], [5.0, 0.0, 0.0, 0.0]])
    got = constrained_logprobs(logits, torch.tensor([1, 0]), [[1, 2], [0]], temperature=1.0)
    expected_first = 1.0 - torch.logsumexp(torch.tensor([1.0, 2.0]), 0)
    assert torch.allclose(got, torch.stack([expected_first, torch.tensor(0.0)]))
    half = constrained_logprobs(logits, torch.tensor([1, 0]), [[1, 2], [0]], temperature=0.5)
    assert torch.allclose(half[0], 2.0 - torch.logsumexp(torch.tensor([2.0, 4.0]), 0))


def test_top_p_keeps_the_smallest_prefix_reaching_p() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert torch.equal(_top_p_filter(probs, 0.7) > 0, torch.tensor([[True, True, False, False]]))
    assert torch.equal(_top_p_filter(probs, 0.45) > 0, torch.tensor([[True, False, False, False]]))
    assert torch.equal(_top_p_filter(probs, 1.0), probs)
