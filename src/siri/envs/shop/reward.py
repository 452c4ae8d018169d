"""WebShop's purchase reward, written from its published definition.

    reward = r_type * (attribute matches + option matches + r_price) / (n goal attributes + n goal options + 1)

- attribute match: a goal attribute counts if WebShop's fuzzy token-set ratio (rapidfuzz's
  ``token_set_ratio`` with the default string processing, rounded to an integer as WebShop's
  ``thefuzz`` does) with one of the product's attributes is > 85, or if it occurs as a substring of
  the product's title, bullet points (features) or description (lowercased).
- option match: after colour normalization, a goal option counts if one chosen option matches it:
  exactly when the option type is ``size`` (WebShop's exact-match rule), by token-set ratio > 85
  otherwise. We count per *goal* option, so matches never exceed the goal's options; WebShop counts
  per *chosen* option and also credits a chosen value found in the product text, which can reward
  options the goal never asked for.
- r_price: 1 if the price is within the goal's bound (no bound: 1).
- r_type: 1.0; 0.5 if neither the queries are equal, nor >= 2 category-path segments are shared, nor
  the title-noun overlap is > 0.2; 0.1 if that overlap is < 0.1; 0 if it is 0. Title-noun overlap =
  share of the goal product's title nouns found in the bought product's title. WebShop finds nouns
  with spaCy's large English model; we have no tagger, so ``title_nouns`` keeps a title's content
  words (no stopwords, units or numbers) — for product titles those are almost all nouns or proper
  nouns, which is what the tagger keeps.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rapidfuzz import fuzz, utils

from siri.envs.shop.catalog import Goal, Product

FUZZY_THRESHOLD = 85
EXACT_MATCH_OPTION_TYPES = frozenset({"size"})

# Base colour words; a colour phrase normalizes to its last base word ("navy blue" -> "blue").
BASE_COLORS = frozenset(
    [
        "black",
        "white",
        "grey",
        "red",
        "pink",
        "blue",
        "green",
        "yellow",
        "orange",
        "purple",
        "brown",
        "beige",
        "ivory",
        "gold",
        "silver",
        "teal",
        "khaki",
        "burgundy",
        "coral",
        "nude",
        "mauve",
        "plum",
        "berry",
        "tan",
        "navy",
        "maroon",
        "turquoise",
        "lavender",
    ]
)
_COLOR_SYNONYMS = {"gray": "grey", "multicolor": "multi", "golden": "gold"}

TITLE_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "for",
        "with",
        "of",
        "in",
        "on",
        "to",
        "by",
        "from",
        "at",
        "as",
        "is",
        "it",
        "its",
        "this",
        "that",
        "your",
        "our",
        "you",
        "my",
        "per",
        "pack",
        "count",
        "oz",
        "fl",
        "ounce",
        "ounces",
        "lb",
        "lbs",
        "pound",
        "pounds",
        "inch",
        "inches",
        "ft",
        "ml",
        "mm",
        "cm",
        "gb",
        "tb",
        "w",
        "set",
        "pcs",
        "pc",
        "piece",
        "pieces",
    ]
)


def fuzzy_ratio(a: str, b: str) -> int:
    """WebShop's ``fuzz.token_set_ratio`` (thefuzz: processed strings, integer result)."""
    return round(fuzz.token_set_ratio(a, b, processor=utils.default_process))


def fuzzy_match(a: str, b: str) -> bool:
    return fuzzy_ratio(a, b) > FUZZY_THRESHOLD


@functools.lru_cache(maxsize=65536)
def normalize_color(value: str) -> str:
    """Map a colour phrase to its base colour ("Navy Blue" -> "blue"); other values are only lowercased.

    Multi-colour values ("black | brown", WebShop's spelling of "Black/Brown") normalize part by part.
    """
    if "|" in value:
        return " | ".join(normalize_color(part) for part in value.split("|"))
    words = [_COLOR_SYNONYMS.get(w, w) for w in value.lower().split()]
    for w in reversed(words):
        if w in BASE_COLORS:
            return w
    return " ".join(words)


def title_nouns(title: str) -> set[str]:
    """Content words of a title: WebShop's NOUN/PROPN filter without a tagger (see module docstring)."""
    words = set()
    for w in re.findall(r"[a-z][a-z'&]*", title.lower()):
        w = w.removesuffix("'s").strip("'")
        if len(w) > 1 and w not in TITLE_STOPWORDS:
            words.add(w)
    return words


def attribute_present(goal_attribute: str, attributes: Sequence[str], text: str) -> bool:
    """WebShop's attribute test: fuzzy match with a product attribute, or a substring of its text."""
    if any(fuzzy_match(a, goal_attribute) for a in attributes):
        return True
    return goal_attribute.lower() in text


def product_text(product: Product) -> str:
    """Title, bullet points and description, lowercased: where WebShop looks for unlisted attributes."""
    return "\n".join((product.title.lower(), " ".join(product.features).lower(), product.description.lower()))


def options_match(option_type: str, chosen_value: str, goal_value: str) -> bool:
    """Does a chosen option value satisfy a goal option value (after colour normalization)?"""
    chosen, goal = normalize_color(chosen_value), normalize_color(goal_value)
    if option_type.lower() in EXACT_MATCH_OPTION_TYPES:
        return chosen == goal
    return fuzzy_match(goal, chosen)


@dataclass(frozen=True)
class RewardBreakdown:
    """The reward and its parts, as WebShop's verbose reward info reports them."""

    reward: float
    r_type: float
    query_match: bool
    category_match: bool
    title_score: float
    attribute_matches: int
    n_attributes: int
    option_matches: int
    n_options: int
    r_price: int
    price: float
    price_upper: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def type_reward(product: Product, goal: Goal) -> tuple[float, bool, bool, float]:
    """(r_type, query_match, category_match, title_score) for buying ``product`` for ``goal``."""
    query_match = product.query == goal.query
    bought_path = {s.strip() for s in product.path.split("›")}
    goal_path = {s.strip() for s in goal.path.split("›")}
    category_match = len(bought_path & goal_path) >= 2
    wanted = title_nouns(goal.name)
    title_score = len(title_nouns(product.title) & wanted) / len(wanted) if wanted else 0.2
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type, query_match, category_match, title_score


def shop_reward(
    product: Product, goal: Goal, chosen: Mapping[str, str], price: float | None = None
) -> RewardBreakdown:
    """WebShop's reward for buying ``product`` with options ``chosen`` (option type -> value) for ``goal``."""
    price = product.price if price is None else price
    r_type, query_match, category_match, title_score = type_reward(product, goal)
    text = product_text(product)
    n_attr = sum(attribute_present(g, product.attributes, text) for g in goal.attributes)
    n_opt = sum(any(options_match(k, v, g) for k, v in chosen.items()) for g in goal.options)
    r_price = int(goal.price_upper is None or price <= goal.price_upper)
    total = (n_attr + n_opt + r_price) / (len(goal.attributes) + len(goal.options) + 1)
    return RewardBreakdown(
        reward=total * r_type,
        r_type=r_type,
        query_match=query_match,
        category_match=category_match,
        title_score=title_score,
        attribute_matches=n_attr,
        n_attributes=len(goal.attributes),
        option_matches=n_opt,
        n_options=len(goal.options),
        r_price=r_price,
        price=price,
        price_upper=goal.price_upper,
    )


def best_options(product: Product, goal: Goal) -> dict[str, str]:
    """Options of ``product`` covering as many goal options as a greedy pass can.

    Per goal option (in order), the first offered value of the first still-free option type that
    matches it; option types no goal option needs stay unchosen.
    """
    chosen: dict[str, str] = {}
    for g in goal.options:
        if any(options_match(k, v, g) for k, v in chosen.items()):
            continue
        for kind, values in product.options.items():
            if kind in chosen:
                continue
            hit = next((v for v in values if options_match(kind, v, g)), None)
            if hit is not None:
                chosen[kind] = hit
                break
    return chosen


def winning_options(product: Product, goal: Goal) -> dict[str, str] | None:
    """``best_options`` if they make buying ``product`` worth reward 1 for ``goal``, else ``None``."""
    chosen = best_options(product, goal)
    return chosen if shop_reward(product, goal, chosen).reward == 1.0 else None
