"""The shop's pages as text, in WebShop's text mode, and how clicks move between them.

Pages: the search page (only page with a search bar), result pages (10 products each, ``Next >`` /
``< Prev``, ``Back to Search``), the item page (options grouped by type, ``Description``,
``Features``, ``Reviews``, ``Buy Now``, ``< Prev`` back to the results), its three sub-pages
(``< Prev`` back to the item), and the page after ``Buy Now``. Page parts are joined with
`` [SEP] `` as WebShop's ``text`` observation mode does; clickables are lowercase, as WebShop's
``get_available_actions`` lists them. Chosen options are announced with "You have clicked <value>."
(WebShop's ``text_rich`` wording), since the plain text mode would not show them at all.

A ``Page`` is the complete state of the site: it is the env's anchor key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from siri.envs.shop.catalog import Catalog, Product
from siri.envs.shop.search import catalog_index

PRODUCTS_PER_PAGE = 10
SEP = " [SEP] "
BACK_TO_SEARCH = "back to search"
NEXT_PAGE = "next >"
PREV_PAGE = "< prev"
BUY_NOW = "buy now"
SUB_PAGES = ("description", "features", "reviews")


@dataclass(frozen=True)
class Page:
    """Where the shopper is.

    Attributes:
        kind: "search", "results", "item", "description", "features", "reviews" or "done".
        query: the search query of the current results (normalized: lowercase, single spaces).
        page: results page number (1-based).
        asin: the open product ("" on search and results pages).
        options: chosen options as (option type, value) pairs, in the product's option order.
    """

    kind: str = "search"
    query: str = ""
    page: int = 1
    asin: str = ""
    options: tuple[tuple[str, str], ...] = ()

    def anchor(self) -> tuple[str, str, int, str, tuple[tuple[str, str], ...]]:
        return (self.kind, self.query, self.page, self.asin, self.options)


def results(catalog: Catalog, query: str) -> tuple[int, ...]:
    return catalog_index(catalog).search(query)


def page_products(catalog: Catalog, page: Page) -> list[Product]:
    hits = results(catalog, page.query)
    start = (page.page - 1) * PRODUCTS_PER_PAGE
    return [catalog.products[i] for i in hits[start : start + PRODUCTS_PER_PAGE]]


def has_next(catalog: Catalog, page: Page) -> bool:
    return len(results(catalog, page.query)) > page.page * PRODUCTS_PER_PAGE


def clickables(catalog: Catalog, page: Page) -> list[str]:
    """What can be clicked on ``page``, lowercase, in page order."""
    if page.kind == "results":
        items = [BACK_TO_SEARCH]
        if page.page > 1:
            items.append(PREV_PAGE)
        if has_next(catalog, page):
            items.append(NEXT_PAGE)
        return items + [p.asin.lower() for p in page_products(catalog, page)]
    if page.kind == "item":
        product = catalog.by_asin[page.asin]
        values = [v for vs in product.options.values() for v in vs]
        return [BACK_TO_SEARCH, PREV_PAGE, *dict.fromkeys(values), *SUB_PAGES, BUY_NOW]
    if page.kind in SUB_PAGES:
        return [BACK_TO_SEARCH, PREV_PAGE]
    return []


def click(catalog: Catalog, page: Page, target: str) -> Page:
    """The page after clicking ``target`` (already checked to be one of ``clickables``)."""
    if target == BACK_TO_SEARCH:
        return Page()
    if page.kind == "results":
        if target == NEXT_PAGE:
            return replace(page, page=page.page + 1)
        if target == PREV_PAGE:
            return replace(page, page=page.page - 1)
        return replace(page, kind="item", asin=target.upper(), options=())
    if page.kind == "item":
        if target == PREV_PAGE:
            return replace(page, kind="results", asin="", options=())
        if target in SUB_PAGES:
            return replace(page, kind=target)
        if target == BUY_NOW:
            return replace(page, kind="done")
        product = catalog.by_asin[page.asin]
        kind = next(k for k, vs in product.options.items() if target in vs)
        chosen = dict(page.options)
        chosen[kind] = target
        return replace(page, options=tuple((k, chosen[k]) for k in product.options if k in chosen))
    if page.kind in SUB_PAGES and target == PREV_PAGE:
        return replace(page, kind="item")
    raise ValueError(f"cannot click {target!r} on a {page.kind} page")


def render(
    catalog: Catalog, page: Page, instruction: str, show_instruction: bool = True, score: float = 0.0
) -> str:
    """The page as WebShop's ``[SEP]``-joined text."""
    head = ["Instruction:", instruction] if show_instruction else []
    if page.kind == "search":
        return SEP.join(["WebShop", *head, "Search"])
    if page.kind == "results":
        total = len(results(catalog, page.query))
        parts = [*head, "Back to Search", f"Page {page.page} (Total results: {total})"]
        if page.page > 1:
            parts.append("< Prev")
        if has_next(catalog, page):
            parts.append("Next >")
        for p in page_products(catalog, page):
            parts += [p.asin, p.title, f"${p.price:.2f}"]
        return SEP.join(parts)
    product = catalog.by_asin[page.asin]
    if page.kind == "done":
        chosen = ", ".join(v for _, v in page.options) or "none"
        return SEP.join(
            [
                "Thank you for shopping with us!",
                "Purchased",
                product.asin,
                product.title,
                f"Options: {chosen}",
                "Your score (min 0.0, max 1.0)",
                f"{score:.2f}",
            ]
        )
    parts = [*head, *(f"You have clicked {v}." for _, v in page.options), "Back to Search", "< Prev"]
    if page.kind == "item":
        for kind, values in product.options.items():
            parts += [kind, *values]
        rating = "N.A." if product.rating is None else f"{product.rating:.1f}"
        parts += [
            product.title,
            f"Price: ${product.price:.2f}",
            f"Rating: {rating}",
            "Description",
            "Features",
            "Reviews",
            "Buy Now",
        ]
    elif page.kind == "description":
        parts.append(product.description)
    elif page.kind == "features":
        parts += list(product.features)
    elif page.kind == "reviews":
        for r in product.reviews:
            parts += [r.title, str(r.score), r.body]
    return SEP.join(parts)
