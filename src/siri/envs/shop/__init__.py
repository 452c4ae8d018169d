"""The shop environment: WebShop's site as text over a generated (or WebShop's own) product catalog.

``ShopEnv`` is the env; ``load_catalog`` / ``catalog_texts`` give the catalog and all its words;
``shop_reward`` is WebShop's purchase reward.
"""

from __future__ import annotations

from siri.envs.shop.catalog import Catalog, Goal, Product, Review, catalog_texts, load_catalog
from siri.envs.shop.env import SEARCH_PLACEHOLDER, ShopEnv
from siri.envs.shop.reward import RewardBreakdown, shop_reward

__all__ = [
    "SEARCH_PLACEHOLDER",
    "Catalog",
    "Goal",
    "Product",
    "Review",
    "RewardBreakdown",
    "ShopEnv",
    "catalog_texts",
    "load_catalog",
    "shop_reward",
]
