"""WebShop's purchase reward on hand-built products and goals; every expected value is computed by hand."""

from __future__ import annotations

import pytest

from siri.envs.shop.catalog import Goal, Product
from siri.envs.shop.reward import (
    fuzzy_ratio,
    normalize_color,
    options_match,
    shop_reward,
    title_nouns,
    type_reward,
    winning_options,
)

SHAMPOO_PATH = "Beauty & Personal Care › Hair Care › Shampoo & Conditioner › Shampoos"


def shampoo(**changes) -> Product:
    fields = dict(
        asin="B000000001",
        title="Velora Volumizing Shampoo - Sulfate Free",
        category="beauty",
        query="shampoo",
        path=SHAMPOO_PATH,
        price=20.0,
        attributes=("sulfate free", "color safe"),
        options={"size": ("8.4 fl oz", "16.9 fl oz", "6.9 fl oz"), "scent": ("lavender", "coconut")},
        description="A gentle shampoo for dry hair.",
        features=("SULFATE FREE: gentle enough for everyday use",),
    )
    fields.update(changes)
    return Product(**fields)


def goal(**changes) -> Goal:
    fields = dict(
        asin="B000000001",
        instruction="i need a sulfate free shampoo for dry hair with hair growth ...",
        category="beauty",
        attributes=("sulfate free", "dry hair", "hair growth"),
        options=("16.9 fl oz", "lavender"),
        price_upper=30.0,
        query="shampoo",
        path=SHAMPOO_PATH,
        name="Velora Volumizing Shampoo - Sulfate Free",
    )
    fields.update(changes)
    return Goal(**fields)


RIGHT = {"size": "16.9 fl oz", "scent": "lavender"}


def test_partial_match_counts_attributes_from_list_and_text():
    # sulfate free: in the attribute list; dry hair: substring of the description; hair growth: nowhere.
    r = shop_reward(shampoo(), goal(), RIGHT)
    assert (r.attribute_matches, r.option_matches, r.r_price, r.r_type) == (2, 2, 1, 1.0)
    assert r.reward == pytest.approx(5 / 6)  # (2 + 2 + 1) / (3 + 2 + 1)


def test_full_match_is_exactly_one():
    g = goal(attributes=("sulfate free", "dry hair"))
    assert shop_reward(shampoo(), g, RIGHT).reward == 1.0  # (2 + 2 + 1) / (2 + 2 + 1)


def test_wrong_option():
    r = shop_reward(shampoo(), goal(), {"size": "16.9 fl oz", "scent": "coconut"})
    assert r.option_matches == 1
    assert r.reward == pytest.approx(4 / 6)


def test_no_option_chosen():
    assert shop_reward(shampoo(), goal(), {}).reward == pytest.approx(3 / 6)


def test_size_is_matched_exactly_other_types_fuzzily():
    # token-set ratio of these two sizes is 95 (> 85), but WebShop matches sizes exactly.
    assert fuzzy_ratio("6.9 fl oz", "16.9 fl oz") > 85
    assert not options_match("size", "6.9 fl oz", "16.9 fl oz")
    assert options_match("style", "6.9 fl oz", "16.9 fl oz")
    r = shop_reward(shampoo(), goal(), {"size": "6.9 fl oz", "scent": "lavender"})
    assert r.reward == pytest.approx(4 / 6)


def test_wrong_price():
    r = shop_reward(shampoo(price=35.0), goal(), RIGHT)
    assert r.r_price == 0
    assert r.reward == pytest.approx(4 / 6)  # (2 + 2 + 0) / 6
    assert shop_reward(shampoo(price=30.0), goal(), RIGHT).r_price == 1  # the bound itself is within budget
    assert shop_reward(shampoo(price=999.0), goal(price_upper=None), RIGHT).r_price == 1  # no bound


def test_wrong_type_scores_zero():
    speaker = shampoo(
        title="Boomix Party Bluetooth Speaker - Deep Bass",
        query="bluetooth speaker",
        path="Electronics › Portable Audio & Video › Portable Speakers & Docks",
        attributes=("sulfate free",),  # even with the attribute, the type factor is 0
        description="",
        features=(),
    )
    r = shop_reward(speaker, goal(), RIGHT)
    assert r.title_score == 0.0 and r.r_type == 0.0 and r.reward == 0.0


def test_type_factor_half_when_nothing_but_a_fifth_of_the_nouns_matches():
    # goal nouns: velora, volumizing, shampoo, sulfate, free; bought: free, spirit, candle -> 1/5 = 0.2 (not > 0.2)
    candle = shampoo(
        title="Free Spirit Candle",
        query="candle",
        path="Home & Kitchen › Candles",
        attributes=(),
        description="",
        features=(),
    )
    r = shop_reward(candle, goal(), {})
    assert r.title_score == pytest.approx(0.2)
    assert (r.query_match, r.category_match, r.r_type) == (False, False, 0.5)
    assert r.reward == pytest.approx(0.5 * 1 / 6)  # only the price counts


def test_type_factor_query_or_category_rescue_and_low_overlap_floor():
    g = goal(name="Alpha Beta Gamma Delta Epsilon Zeta Theta Iota Kappa Shampoo")  # 10 nouns
    low = shampoo(title="Kappa Shampoo Thing")  # 2/10 = 0.2, same query -> 1.0
    assert type_reward(low, g)[0] == 1.0
    lower = shampoo(title="Shampoo Thing")  # 1/10 = 0.1: not < 0.1, same query -> 1.0
    assert type_reward(lower, g)[0] == 1.0
    g11 = goal(name="Alpha Beta Gamma Delta Epsilon Zeta Theta Iota Kappa Lambda Shampoo")  # 11 nouns
    assert type_reward(lower, g11)[0] == 0.1  # 1/11 < 0.1 wins over the query match
    other = shampoo(title="Kappa Shampoo Thing", query="soap", path="Health › Soap")
    assert type_reward(other, g)[0] == 0.5  # 0.2 is not > 0.2 and neither query nor 2 path segments match
    same_dept = shampoo(
        title="Kappa Shampoo Thing", query="soap", path="Beauty & Personal Care › Hair Care › Soap"
    )
    assert type_reward(same_dept, g)[1:3] == (False, True)
    assert type_reward(same_dept, g)[0] == 1.0  # two shared path segments


def test_attribute_fuzzy_match():
    g = goal(attributes=("long lasting",), options=())
    assert (
        shop_reward(shampoo(attributes=("long lasting wear",)), g, {}).attribute_matches == 1
    )  # token-set 100
    g2 = goal(attributes=("gluten free",), options=())
    assert (
        shop_reward(shampoo(attributes=("sugar free",), title="Velora Shampoo"), g2, {}).attribute_matches
        == 0
    )


def test_colour_normalization():
    assert normalize_color("Navy Blue") == "blue"
    assert normalize_color("gray") == "grey"
    assert normalize_color("16.9 fl oz") == "16.9 fl oz"
    assert options_match("color", "blue", "navy blue")
    assert options_match("color", "Heather Gray", "charcoal grey")
    assert not options_match("color", "black", "navy blue")
    assert normalize_color("Black | Navy Blue") == "black | blue"
    assert options_match("color", "black | brown", "black")  # token-set: {black} within {black, brown}


def test_title_nouns_drop_stopwords_units_and_numbers():
    assert title_nouns("Men's Running Shoes for Trail, 10 oz (Pack of 2)") == {
        "men",
        "running",
        "shoes",
        "trail",
    }


def test_winning_options_finds_the_choice_worth_one():
    g = goal(attributes=("sulfate free",))
    assert winning_options(shampoo(), g) == RIGHT
    assert winning_options(shampoo(price=99.0), g) is None  # over budget: no options help
    assert winning_options(shampoo(options={"size": ("8.4 fl oz",), "scent": ("lavender",)}), g) is None
