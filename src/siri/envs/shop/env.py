"""``ShopEnv``: WebShop's text environment on the common env interface.

Actions are WebShop's: ``search[<query>]`` (only on the search page, which is the only page with a
search bar) and ``click[<clickable>]`` (case-insensitive). The episode ends when ``Buy Now`` is
clicked (the reward is paid then) or after ``max_steps`` actions.

How an agent is told it can search: on the search page the admissible actions are *suggested
queries*, ``search[...]`` with up to three queries made only of the instruction's own words (all key
words; without option values; without option values and attributes). A constrained ("choose")
decoder picks one of them; a free-text agent may send ``search[<any words>]``, which the env accepts
whenever the search bar is shown. The observation says so in ``action_templates`` (``SEARCH_TEMPLATE``,
on the search page only), so that projection lets such a query through to the env, which still judges
it. With ``search_hint=True`` the list also starts with the literal ``search[<your query>]``
(verl-agent's WebShop convention) as a reminder; sending that placeholder itself is an invalid action.
On every other page the admissible actions are exactly the clickables.

Splits: "train" and "eval" are fixed goal lists of the catalog (generated catalog: 4,500 train and
500 eval goals); the seed picks goal ``seed % split_size()`` (``siri.envs.base.split_seed``, the rule the trainer
applies to every finite split), so seeds beyond the split size wrap around.
"""

from __future__ import annotations

import re
from typing import Any

from siri.envs.base import EnvError, EpisodeTracker, Observation, Step, malformed_action, split_seed
from siri.envs.shop.catalog import Catalog, Goal
from siri.envs.shop.expert import ShopExpert
from siri.envs.shop.loading import load_catalog
from siri.envs.shop.reward import shop_reward
from siri.envs.shop.search import suggested_queries, tokenize
from siri.envs.shop.site import Page, click, clickables, render

SPLITS = ("train", "eval")
MAX_ACTION_CHARS = 500
SEARCH_PLACEHOLDER = "search[<your query>]"
# The free-form action of the search page (one <...> slot); its words are in the prompts' own vocabulary.
SEARCH_TEMPLATE = "search[<text>]"
_ACTION = re.compile(r"^\s*([A-Za-z_]+)\s*\[(.*)\]\s*$", re.DOTALL)


class ShopEnv:
    """WebShop's site as text over a catalog, with WebShop's purchase reward.

    Args:
        split: "train" or "eval" (fixed goal lists; the seed indexes them modulo their size).
        max_steps: actions per episode (WebShop reference setting: 15).
        catalog: ``None`` for the generated catalog, or a path to WebShop's data files.
        num_products: catalog size (generated: number of products, default 5000; WebShop files: keep the first N).
        show_instruction: repeat "Instruction: [SEP] <goal>" on every page, as WebShop's pages do.
        search_hint: also list the literal ``search[<your query>]`` placeholder on the search page.
    """

    name = "shop"

    def __init__(
        self,
        split: str = "train",
        max_steps: int = 15,
        catalog: str | None = None,
        num_products: int | None = None,
        show_instruction: bool = True,
        search_hint: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise EnvError(f"shop: unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        self.split = split
        self.max_steps = max_steps
        self.catalog: Catalog = load_catalog(catalog, num_products)
        self.goals = self.catalog.splits[split]
        if not self.goals:
            raise EnvError(f"shop: catalog {self.catalog.key} has no {split} goals")
        self.show_instruction = show_instruction
        self.search_hint = search_hint
        self._tracker = EpisodeTracker(max_steps)
        self._experts: dict[int, ShopExpert] = {}
        self.goal_index = 0
        self.goal: Goal = self.goals[0]
        self.page = Page()
        self.score = 0.0
        self.suggestions: list[str] = []

    # ------------------------------------------------------------------------------------ interface

    def split_size(self) -> int:
        return len(self.goals)

    def reset(self, seed: int) -> Observation:
        try:
            self.goal_index = split_seed(seed, len(self.goals))
        except EnvError as e:
            raise EnvError(f"shop: {e}") from None
        self.goal = self.goals[self.goal_index]
        self.page = Page()
        self.score = 0.0
        self.suggestions = suggested_queries(self.goal.instruction, self.goal.attributes, self.goal.options)
        self._tracker.start()
        return self._observation()

    def step(self, action: str) -> Step:
        self._tracker.before_step(self.name)
        reason, new_page = self._parse(action)
        reward, won, info = 0.0, False, {}
        if not reason:
            assert new_page is not None
            self.page = new_page
            if new_page.kind == "done":
                product = self.catalog.by_asin[new_page.asin]
                breakdown = shop_reward(product, self.goal, dict(new_page.options))
                reward = breakdown.reward
                won = reward == 1.0
                self.score = reward
                info = {
                    **breakdown.as_dict(),
                    "asin": product.asin,
                    "options": dict(new_page.options),
                    "target_asin": self.goal.asin,
                }
        done, truncated = self._tracker.finish(self.page.kind == "done")
        return Step(
            observation=self._observation(),
            reward=reward,
            done=done,
            won=won,
            valid=not reason,
            reason=reason,
            score=self.score,
            truncated=truncated,
            info=info,
        )

    def expert_action(self) -> str:
        if not self._tracker.started:
            raise EnvError("shop: expert_action() before reset(seed); call reset(seed) first")
        expert = self._experts.get(self.goal_index)
        if expert is None:
            expert = self._experts[self.goal_index] = ShopExpert(self.catalog, self.goal)
        return expert.next_action(self.page)

    # ------------------------------------------------------------------------------------ helpers

    def admissible_actions(self) -> list[str]:
        if self.page.kind == "search":
            hint = [SEARCH_PLACEHOLDER] if self.search_hint else []
            return hint + [f"search[{q}]" for q in self.suggestions]
        return [f"click[{c}]" for c in clickables(self.catalog, self.page)]

    def _observation(self) -> Observation:
        text = render(self.catalog, self.page, self.goal.instruction, self.show_instruction, self.score)
        return Observation(
            text=text,
            task=self.goal.instruction,
            task_type=self.goal.category,
            admissible_actions=tuple(self.admissible_actions()),
            anchor=self.page.anchor(),
            step=self._tracker.steps,
            action_templates=(SEARCH_TEMPLATE,) if self.page.kind == "search" else (),
        )

    def _parse(self, action: Any) -> tuple[str, Page | None]:
        """("", next page) for a valid action, else (why it is invalid, None)."""
        reason = malformed_action(action, MAX_ACTION_CHARS)
        if reason:
            return reason, None
        m = _ACTION.match(action)
        if m is None:
            shown = action.strip()[:80] or "(empty)"
            return f"malformed action {shown!r}; expected search[<query>] or click[<clickable>]", None
        verb, arg = m.group(1).lower(), m.group(2)
        if "[" in arg or "]" in arg:
            return "unbalanced or nested brackets; write search[<query>] or click[<clickable>]", None
        if verb == "search":
            if self.page.kind != "search":
                return "there is no search bar on this page; click[back to search] first", None
            query = " ".join(arg.lower().split())
            if f"search[{query}]" == SEARCH_PLACEHOLDER:
                return (
                    "search[<your query>] is a placeholder; put your search words inside the brackets",
                    None,
                )
            if not tokenize(query):
                return "search[] needs at least one word or number inside the brackets", None
            return "", Page(kind="results", query=query, page=1)
        if verb == "click":
            target = " ".join(arg.lower().split())
            allowed = clickables(self.catalog, self.page)
            if target not in allowed:
                if self.page.kind == "search":
                    return "nothing is clickable on the search page; search first: search[<query>]", None
                if not allowed:
                    return f"nothing is clickable on the {self.page.kind} page", None
                listed = ", ".join(allowed[:20]) + (", ..." if len(allowed) > 20 else "")
                return f"{target[:80]!r} is not clickable here; clickable: {listed}", None
            return "", click(self.catalog, self.page, target)
        return f"unknown action {verb!r}; use search[<query>] or click[<clickable>]", None
