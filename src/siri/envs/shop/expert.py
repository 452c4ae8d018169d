"""The shop's expert: search with the instruction's key words, page to a product that earns reward 1,
pick its options, buy.

It may read the goal (that is what makes it an expert), but it only ever uses the site's own moves:
a suggested query, result pages, clicks. The plan — which query, which product at which rank, which
options — is made once per goal; ``next_action`` then works from whatever page the episode is on, so
it recovers after detours (a wrong product, another query, a sub-page).
"""

from __future__ import annotations

from dataclasses import dataclass

from siri.envs.base import EnvError
from siri.envs.shop.catalog import Catalog, Goal, Product
from siri.envs.shop.reward import winning_options
from siri.envs.shop.search import suggested_queries, tokenize
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
            for rank, i in enumerate(self.catalog.index.search(query)):
                product = self.catalog.products[i]
                options = self.winning(product)
                if options is not None:
                    return Plan(query=query, rank=rank, asin=product.asin, options=options)
        raise EnvError(
            f"shop expert: no reachable product earns reward 1 for goal on {self.goal.asin} "
            f"({self.goal.instruction!r}); the goal or catalog is inconsistent"
        )

    def next_action(self, page: Page) -> str:
        if page.kind == "done":
            raise EnvError("shop expert: the episode is over (the product was bought); call reset(seed)")
        if page.kind == "search":
            return f"search[{self.plan.query}]"
        if page.kind in SUB_PAGES:
            return f"click[{PREV_PAGE}]"
        if page.kind == "item":
            product = self.catalog.by_asin[page.asin]
            options = self.winning(product)
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
