"""ShopEnv on the common interface: pages, admissible actions, malformed actions, rewards, expert, determinism."""

from __future__ import annotations

import pickle
import random
from collections.abc import Sequence
from types import SimpleNamespace

import pytest

from siri.envs import BatchEnv, Env, EnvError, make
from siri.envs.shop import SEARCH_PLACEHOLDER, ShopEnv
from siri.envs.shop.env import SEARCH_TEMPLATE
from siri.envs.shop.reward import winning_options
from siri.models.tokenizer import build_word_tokenizer
from siri.rollout.collector import EpisodeSpec, RolloutConfig, collect
from siri.rollout.engine import Generation
from siri.rollout.parsing import project
from siri.rollout.prompts import TEMPLATE_VOCAB_TEXT, TEMPLATES_LINE


@pytest.fixture(scope="module")
def env() -> ShopEnv:
    return ShopEnv()


def run_expert(env: ShopEnv, seed: int) -> tuple[int, object]:
    env.reset(seed)
    n = 0
    while True:
        step = env.step(env.expert_action())
        n += 1
        assert step.valid, step.reason
        if step.done:
            return n, step


def test_registry_builds_it_and_it_is_an_env():
    e = make("shop", split="eval", max_steps=15)
    assert isinstance(e, Env) and isinstance(e, ShopEnv)
    assert (e.name, e.split, e.max_steps, e.split_size()) == ("shop", "eval", 15, 500)
    assert make("shop").split_size() == 4500
    with pytest.raises(EnvError, match="unknown split 'test'"):
        ShopEnv(split="test")
    with pytest.raises(EnvError, match="unknown option"):
        make("shop", colour="red")


def test_search_page_and_suggested_queries(env):
    obs = env.reset(3)
    assert obs.text == f"WebShop [SEP] Instruction: [SEP] {env.goal.instruction} [SEP] Search"
    assert obs.task == env.goal.instruction and obs.task_type == env.goal.category
    assert 1 <= len(obs.admissible_actions) <= 3
    assert all(a.startswith("search[") and a.endswith("]") for a in obs.admissible_actions)
    assert obs.anchor == ("search", "", 1, "", ()) and obs.step == 0
    hinted = ShopEnv(search_hint=True).reset(3)
    assert hinted.admissible_actions == (SEARCH_PLACEHOLDER, *obs.admissible_actions)


def test_pages_follow_webshop_text_mode(env):
    env.reset(0)
    step = env.step("search[shampoo sulfate free]")  # any query works while the search bar is shown
    text = step.observation.text
    assert step.valid and "Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next >" in text
    acts = step.observation.admissible_actions
    assert acts[:2] == ("click[back to search]", "click[next >]") and len(acts) == 12
    asin = acts[2][len("click[") : -1]
    assert asin.upper() in text
    step = env.step("click[next >]")
    assert "Page 2 (Total results: 50) [SEP] < Prev [SEP] Next >" in step.observation.text
    step = env.step("click[< prev]")
    step = env.step(f"Click[{asin.upper()}]")  # clicks are case-insensitive, as in WebShop
    product = env.catalog.by_asin[asin.upper()]
    item = step.observation
    assert item.anchor == ("item", "shampoo sulfate free", 1, product.asin, ())
    for kind, values in product.options.items():
        assert f"{kind} [SEP] {' [SEP] '.join(values)}" in item.text
    assert item.text.endswith(
        f"{product.title} [SEP] Price: ${product.price:.2f} [SEP] Rating: "
        f"{'N.A.' if product.rating is None else f'{product.rating:.1f}'} [SEP] Description [SEP] Features "
        "[SEP] Reviews [SEP] Buy Now"
    )
    value = next(iter(product.options.values()))[0]
    step = env.step(f"click[{value}]")
    assert f"You have clicked {value}." in step.observation.text
    assert step.observation.anchor[4] == ((next(iter(product.options)), value),)
    step = env.step("click[features]")
    assert step.observation.text.endswith(" [SEP] ".join(product.features))
    assert step.observation.admissible_actions == ("click[back to search]", "click[< prev]")
    step = env.step("click[< prev]")  # back to the item with the chosen option kept
    assert step.observation.anchor[0] == "item" and step.observation.anchor[4] != ()
    step = env.step("click[back to search]")
    assert step.observation.anchor == ("search", "", 1, "", ()) and not step.done


MALFORMED = [
    "click[nonexistent]",
    "search[]",
    "search[   ]",
    "search[☃☃☃ !!]",
    "click[buy now",
    "click buy now]",
    "click[[buy now]]",
    "search[a] search[b]",
    "search[" + "x" * 600 + "]",
    "",
    "   ",
    "jump[shoes]",
    "\x00\x01 click[\u202e]",
    None,
    SEARCH_PLACEHOLDER,
]


@pytest.mark.parametrize("action", MALFORMED)
def test_malformed_actions_are_invalid_steps(env, action):
    obs = env.reset(1)
    step = env.step(action)
    assert not step.valid and step.reason
    assert step.observation.anchor == obs.anchor and step.observation.text == obs.text
    assert step.reward == 0.0 and not step.done and step.observation.step == 1


def test_invalid_reasons_are_specific(env):
    env.reset(1)
    assert "needs at least one word" in env.step("search[]").reason
    assert "(limit 500)" in env.step("search[" + "x" * 600 + "]").reason
    assert "placeholder" in env.step(SEARCH_PLACEHOLDER).reason
    assert "malformed" in env.step("click[buy now").reason
    assert "brackets" in env.step("click[[buy now]]").reason
    assert "unknown action 'jump'" in env.step("jump[shoes]").reason
    env.step(env.expert_action())  # now on a results page
    assert "no search bar" in env.step("search[shoes]").reason
    reason = env.step("click[nonexistent]").reason
    assert "'nonexistent' is not clickable here; clickable: back to search, next >" in reason


def test_no_search_bar_and_nothing_clickable_on_search_page(env):
    env.reset(2)
    assert "nothing is clickable on the search page" in env.step("click[buy now]").reason


def test_step_limit_and_step_after_done(env):
    env.reset(4)
    for i in range(15):
        step = env.step("click[nowhere]")
        assert step.done == (i == 14)
    assert step.truncated and step.reward == 0.0 and not step.won
    with pytest.raises(EnvError, match="reset"):
        env.step("click[nowhere]")
    fresh = ShopEnv(num_products=400)
    with pytest.raises(EnvError, match="reset"):
        fresh.step("search[x]")
    with pytest.raises(EnvError, match="seed"):
        fresh.reset(-1)


def test_reward_paid_on_buy_with_breakdown(env):
    env.reset(7)
    goal = env.goal
    target = env.catalog.by_asin[goal.asin]
    obs = env.step(f"search[{target.title}]").observation
    while f"click[{target.asin.lower()}]" not in obs.admissible_actions:
        obs = env.step("click[next >]").observation
    env.step(f"click[{target.asin.lower()}]")
    step = env.step("click[buy now]")  # no options chosen
    n_attr, n_opt = len(goal.attributes), len(goal.options)
    assert step.done and not step.truncated and not step.won
    assert step.reward == pytest.approx((n_attr + 0 + 1) / (n_attr + n_opt + 1))
    assert step.score == step.reward and step.info["option_matches"] == 0
    assert step.info["attribute_matches"] == n_attr and step.info["r_type"] == 1.0
    assert step.observation.admissible_actions == () and step.observation.anchor[0] == "done"
    assert "Your score (min 0.0, max 1.0)" in step.observation.text


def test_expert_wins_300_train_and_all_eval_goals():
    train, evals = ShopEnv(split="train"), ShopEnv(split="eval")
    for e, seeds in ((train, range(0, 4500, 15)), (evals, range(evals.split_size()))):
        for seed in seeds:
            n, step = run_expert(e, seed)
            assert step.won and step.reward == 1.0 and step.score == 1.0 and n <= 10, (e.split, seed)
            assert winning_options(e.catalog.by_asin[step.info["asin"]], e.goal) is not None


def test_expert_replans_after_detours():
    e = ShopEnv(max_steps=40)
    rng = random.Random(0)
    for seed in range(60):
        obs = e.reset(seed)
        for _ in range(rng.randrange(1, 8)):  # wander: random clicks, maybe another query
            action = rng.choice(obs.admissible_actions)
            if action == "click[buy now]":
                continue
            obs = e.step(action).observation
        while True:
            step = e.step(e.expert_action())
            if step.done:
                break
        assert step.won, seed
    with pytest.raises(EnvError, match="over"):
        e.expert_action()


def test_same_seed_same_episode():
    a, b = ShopEnv(num_products=400), ShopEnv(num_products=400)
    rng_a, rng_b = random.Random(5), random.Random(5)
    for seed in (0, 11, 11 + a.split_size()):
        oa, ob = a.reset(seed), b.reset(seed)
        assert oa == ob
        for _ in range(15):
            sa, sb = a.step(rng_a.choice(oa.admissible_actions)), b.step(rng_b.choice(ob.admissible_actions))
            assert sa == sb
            oa, ob = sa.observation, sb.observation
            if sa.done:
                break
    assert a.reset(3).task == a.reset(3 + a.split_size()).task  # seeds wrap around the split


def test_random_policy_scores_low_but_not_zero():
    e = ShopEnv(split="eval")
    rng = random.Random(0)
    scores, wins = [], 0
    for seed in range(300):
        obs = e.reset(seed)
        while True:
            step = e.step(rng.choice(obs.admissible_actions))
            obs = step.observation
            if step.done:
                break
        scores.append(step.score)
        wins += step.won
    mean = sum(scores) / len(scores)
    assert 0.05 < mean < 0.5 and wins / len(scores) < 0.1


def test_env_pickles_mid_episode():
    e = ShopEnv(num_products=400)
    e.reset(2)
    e.step(e.expert_action())
    copy = pickle.loads(pickle.dumps(e))
    assert copy.page == e.page and copy.goal == e.goal
    while True:
        action = e.expert_action()
        assert copy.expert_action() == action
        step = e.step(action)
        assert copy.step(action) == step
        if step.done:
            break
    assert step.won


def test_search_template_only_on_the_search_page(env):
    obs = env.reset(4)
    assert obs.action_templates == (SEARCH_TEMPLATE,)
    assert ShopEnv(search_hint=True).reset(4).action_templates == (SEARCH_TEMPLATE,)
    after = env.step("search[shoes]")
    assert after.valid and after.observation.action_templates == ()
    back = env.step("click[back to search]")
    assert back.valid and back.observation.action_templates == (SEARCH_TEMPLATE,)


def test_own_query_projects_to_a_valid_search_and_rejected_slots_stay_invalid(env):
    obs = env.reset(5)
    own = "search[cheap red hiking boots]"
    assert own not in obs.admissible_actions
    p = project(f"<think>my words</think><action>{own}</action>", obs.admissible_actions, obs.action_templates)
    assert p == (own, True, "")
    step = env.step(p.action)
    assert step.valid and env.page.kind == "results" and env.page.query == "cheap red hiking boots"
    env.reset(5)
    # Projection lets any one-line slot through; what counts as a query stays the env's rule.
    p = project("<action>search[!!!]</action>", obs.admissible_actions, obs.action_templates)
    assert p.valid
    rejected = env.step(p.action)
    assert not rejected.valid and "at least one word" in rejected.reason and env.page.kind == "search"


class ScriptedEngine:
    """Stands in for the model only: answers turn ``t`` of every episode with ``responses[t]``."""

    def __init__(self, tokenizer, responses: Sequence[str]) -> None:
        self.tokenizer, self.responses, self.prompts, self.turn = tokenizer, list(responses), [], 0

    def generate(self, prompts, *, choices=None, temperature=1.0, top_p=1.0, max_new_tokens=64, seed=None,
                 seeds=None) -> list[Generation]:
        self.prompts.append([self.tokenizer.decode(p) for p in prompts])
        ids = self.tokenizer(self.responses[self.turn], add_special_tokens=False)["input_ids"]
        self.turn += 1
        return [Generation(list(ids), [0.0] * len(ids), "action") for _ in prompts]


def test_generate_mode_sends_the_agents_own_query_to_the_env():
    responses = ["<think>my own words</think><action>search[cheap red hiking boots]</action>",
                 "<think>again</think><action>search[boots]</action>"]
    tokenizer = build_word_tokenizer([TEMPLATE_VOCAB_TEXT, *responses])
    engine = ScriptedEngine(tokenizer, responses)
    batch = BatchEnv([ShopEnv(num_products=400, max_steps=2)])
    config = RolloutConfig(mode="generate", invalid_penalty=0.1)
    (traj,) = collect(SimpleNamespace(tokenizer=tokenizer, model=None), "shop", [EpisodeSpec(group=0, seed=7)],
                      config, engine=engine, batch_env=batch)
    first, second = traj.steps
    assert (first.action, first.valid, first.reward) == ("search[cheap red hiking boots]", True, 0.0)
    # The results page has no search bar and no template: the same kind of action is invalid and penalized.
    assert (second.valid, second.reward) == (False, pytest.approx(-0.1))
    env = batch.envs[0]
    assert env.page.kind == "results" and env.page.query == "cheap red hiking boots"
    line = TEMPLATES_LINE.format(templates=SEARCH_TEMPLATE)
    assert line in engine.prompts[0][0] and line not in engine.prompts[1][0]
