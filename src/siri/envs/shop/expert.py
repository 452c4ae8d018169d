"""The shop's expert: search with the instruction's key words, page to a product that earns reward 1,
pick its options, buy. (If no product can earn 1 — WebShop's own goals do not promise one — it buys
the goal's target with the best options it has.)

It may read the goal (that is what makes it an expert), but it only ever uses the site's own moves:
a suggested query, result pages, clicks. The plan — which query, which product at which rank, which
options — is made once per goal; ``next_action`` then works from whatever page the episode is on, so
it recovers after detours (a wrong product, another query, a sub-page).
"""

from __future__ import annotations

from dataclasses import dataclass

from siri.envs.base import EnvError
from siri.envs.shop.catalog import Catalog, Goal, Product
from siri.envs.shop.reward import best_options, winning_options
from siri.envs.shop.search import catalog_index, suggested_queries, tokenize
from siri.envs.shop.site import (
    BACK_TO_SEARCH,
    BUY_NOW,
    NEXT_PAGE,
    PREV_PAGE,
    PRODUCTS_PER_PAGE,
    SUB_PAGES,
    Page,
    page_products,
)


@dataclass(frozen=True)
class Plan:
    """Search ``query``, open ``asin`` (at 0-based ``rank`` in the results), choose ``options``, buy."""

    query: str
    rank: int
    asin: str
    options: dict[str, str]


class ShopExpert:
    """Plans for one goal of one catalog; ``next_action(page)`` replans from any page."""

    def __init__(self, catalog: Catalog, goal: Goal) -> None:
        self.catalog = catalog
        self.goal = goal
        self._winning: dict[str, dict[str, str] | None] = {}
        self.plan = self._make_plan()

    def winning(self, product: Product) -> dict[str, str] | None:
        """Options that make ``product`` a reward-1 purchase for the goal (``None``: none do); cached."""
        if product.asin not in self._winning:
            self._winning[product.asin] = winning_options(product, self.goal)
        return self._winning[product.asin]

    def _make_plan(self) -> Plan:
        target = self.catalog.by_asin[self.goal.asin]
        queries = suggested_queries(self.goal.instruction, self.goal.attributes, self.goal.options)
        # Last resort: the target's title words (always find it; also a query made of catalog words).
        queries.append(" ".join(dict.fromkeys(tokenize(target.title))))
        for query in queries:
            for rank, i in enumerate(catalog_index(self.catalog).search(query)):
                product = self.catalog.products[i]
                options = self.winning(product)
                if options is not None:
                    return Plan(query=query, rank=rank, asin=product.asin, options=options)
        # No product earns 1 (possible with WebShop's own goals): buy the target as well as it can be bought.
        hits = catalog_index(self.catalog).search(queries[-1])
        rank = next((r for r, i in enumerate(hits) if self.catalog.products[i].asin == target.asin), None)
        if rank is None:
            raise EnvError(
                f"shop expert: the target {target.asin} cannot be found by searching its own title"
            )
        return Plan(query=queries[-1], rank=rank, asin=target.asin, options=best_options(target, self.goal))

    def _buy_options(self, product: Product) -> dict[str, str] | None:
        """The options to buy ``product`` with, or ``None`` if the expert would not buy it."""
        if product.asin == self.plan.asin:
            return self.plan.options
        return self.winning(product)

    def next_action(self, page: Page) -> str:
        if page.kind == "done":
            raise EnvError("shop expert: the episode is over (the product was bought); call reset(seed)")
        if page.kind == "search":
            return f"search[{self.plan.query}]"
        if page.kind in SUB_PAGES:
            return f"click[{PREV_PAGE}]"
        if page.kind == "item":
            options = self._buy_options(self.catalog.by_asin[page.asin])
            if options is None:
                return f"click[{PREV_PAGE if page.query == self.plan.query else BACK_TO_SEARCH}]"
            chosen = dict(page.options)
            for kind, value in options.items():
                if chosen.get(kind) != value:
                    return f"click[{value}]"
            return f"click[{BUY_NOW}]"
        # results page
        on_page = page_products(self.catalog, page)
        if page.query == self.plan.query:
            target_page = self.plan.rank // PRODUCTS_PER_PAGE + 1
            if page.page < target_page:
                return f"click[{NEXT_PAGE}]"
            if page.page > target_page:
                return f"click[{PREV_PAGE}]"
            return f"click[{self.plan.asin.lower()}]"
        for product in on_page:  # another query's results: take a winner if one is in sight
            if self.winning(product) is not None:
                return f"click[{product.asin.lower()}]"
        return f"click[{BACK_TO_SEARCH}]"
