"""The shop environment: WebShop's site as text over a generated (or WebShop's own) product catalog.

``ShopEnv`` is the env; ``load_catalog`` / ``catalog_texts`` / ``vocabulary_texts`` give the catalog and
all its words; ``shop_reward`` is WebShop's purchase reward. ``SPLITS`` and ``vocabulary_texts()`` are
what ``siri.envs.env_splits`` and the tiny model's vocabulary builder look for on an env module.

Modules, lowest first (none imports one above it): ``catalog`` (products, goals: plain data) and
``specs`` (what generated products are made of); ``reward``, ``search`` (BM25 index per catalog);
``site`` (pages); ``generate`` and ``webshop_files`` (the two catalog sources); ``loading`` (picks and
caches one); ``expert``; ``env``.
"""

from __future__ import annotations

from siri.envs.shop.catalog import Catalog, Goal, Product, Review, catalog_texts
from siri.envs.shop.env import SEARCH_PLACEHOLDER, SPLITS, ShopEnv
from siri.envs.shop.loading import load_catalog
from siri.envs.shop.reward import RewardBreakdown, shop_reward


def vocabulary_texts(catalog: str | None = None, num_products: int | None = None) -> list[str]:
    """Every text of the (default) catalog's shop: page chrome, products, instructions (see ``catalog_texts``)."""
    return list(catalog_texts(load_catalog(catalog, num_products)))


__all__ = [
    "SEARCH_PLACEHOLDER",
    "SPLITS",
    "Catalog",
    "Goal",
    "Product",
    "Review",
    "RewardBreakdown",
    "ShopEnv",
    "catalog_texts",
    "load_catalog",
    "shop_reward",
    "vocabulary_texts",
]
