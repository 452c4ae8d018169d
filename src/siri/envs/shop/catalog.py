"""Products, goals and catalogs: plain data, shared by every part of the shop.

A catalog is either *generated* (the default, ``generate.py``) or *loaded* from WebShop's own data
files (``webshop_files.py``); ``loading.py`` picks one and caches it per process. Both give the same
objects, so search, pages, reward and expert never know the difference. This module imports no other
module of the shop, so every one of them can import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from siri.envs.base import EnvError


@dataclass(frozen=True)
class Review:
    title: str
    body: str
    score: int


@dataclass(frozen=True)
class Product:
    """One product as WebShop stores it (field names follow WebShop's meaning).

    Attributes:
        asin: product id shown on result pages and clicked to open the item ("B0...").
        title: WebShop's ``Title``/``name``.
        category: top-level category, the env's ``task_type`` (beauty, grocery, ...).
        query: the search query the product was scraped under (type reward: query match).
        path: WebShop's ``product_category`` breadcrumb, segments joined by " › ".
        price: the price in dollars.
        attributes: WebShop's ``Attributes`` list.
        options: option type -> values, in page order (values lowercase, as WebShop shows them).
        description: WebShop's ``Description``.
        features: WebShop's ``BulletPoints``.
        reviews: the product's reviews.
        rating: average review score; ``None`` shows as "N.A.".
    """

    asin: str
    title: str
    category: str
    query: str
    path: str
    price: float
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    description: str
    features: tuple[str, ...]
    reviews: tuple[Review, ...] = ()
    rating: float | None = None

    def __hash__(self) -> int:
        return hash(self.asin)


@dataclass(frozen=True)
class Goal:
    """One shopping task: WebShop's goal dict.

    Attributes:
        asin: the product the instruction was written for.
        instruction: the full instruction text, price clause included.
        category: task type (the target's top-level category).
        attributes: goal attributes (WebShop's ``attributes``).
        options: goal option values (WebShop's ``goal_options``).
        price_upper: budget in dollars; ``None`` means no bound (r_price is always 1).
        query, path, name: the target's query, category path and title (for the type reward).
    """

    asin: str
    instruction: str
    category: str
    attributes: tuple[str, ...]
    options: tuple[str, ...]
    price_upper: float | None
    query: str
    path: str
    name: str


@dataclass
class Catalog:
    """Products plus the fixed goal splits ("train", "eval") over them.

    ``key`` identifies the catalog (the search index cache and env anchors rely on it).
    """

    key: str
    products: list[Product]
    splits: dict[str, list[Goal]]
    by_asin: dict[str, Product] = field(init=False)

    def __post_init__(self) -> None:
        self.by_asin = {p.asin: p for p in self.products}
        if len(self.by_asin) != len(self.products):
            raise EnvError(f"catalog {self.key}: product ids (asins) are not unique")
        for split, goals in self.splits.items():
            for goal in goals:
                if goal.asin not in self.by_asin:
                    raise EnvError(f"catalog {self.key}: {split} goal names unknown product {goal.asin}")

    def categories(self) -> list[str]:
        return sorted({p.category for p in self.products})


# Fixed page text of the site, for vocabularies.
PAGE_WORDS = (
    "WebShop",
    "Instruction:",
    "Search",
    "Back to Search",
    "Next >",
    "< Prev",
    "Page 1 (Total results: 50)",
    "Description",
    "Features",
    "Reviews",
    "Buy Now",
    "Price:",
    "Rating:",
    "N.A.",
    "You have clicked",
    "Thank you for shopping with us!",
    "Your score (min 0.0, max 1.0)",
    "search",
    "click",
    "[SEP]",
    "0 1 2 3 4 5 6 7 8 9 $ . , : ( ) [ ] < > -",
)


def catalog_texts(catalog: Catalog) -> Iterator[str]:
    """Every text the shop can show or accept for ``catalog``: page chrome, products, instructions.

    Cheap (no rendering); a word-level tokenizer built over these strings covers every observation and
    every suggested search query.
    """
    yield from PAGE_WORDS
    yield from (f"Page {n} (Total results: {n})" for n in range(51))  # page numbers and result counts
    yield from (f"{k / 100:.2f}" for k in range(101))  # the score shown after buying
    seen_options: set[str] = set()
    for p in catalog.products:
        yield p.asin
        yield p.asin.lower()
        yield p.title
        yield p.description
        yield from p.features
        yield from p.attributes
        for kind, values in p.options.items():
            if kind not in seen_options:
                seen_options.add(kind)
                yield kind
            yield from values
        for r in p.reviews:
            yield r.title
            yield r.body
            yield str(r.score)
        if p.rating is not None:
            yield f"Rating: {p.rating:.1f}"
        yield f"${p.price:.2f}"
    for goals in catalog.splits.values():
        for g in goals:
            yield g.instruction
