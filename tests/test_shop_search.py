"""BM25 search: equal to rank_bm25's own scoring, sensible on a hand-made corpus, finds goals' products."""

from __future__ import annotations

import numpy as np
import pytest

from siri.envs.shop import ShopEnv, load_catalog
from siri.envs.shop.catalog import Product
from siri.envs.shop.reward import winning_options
from siri.envs.shop.search import (
    SEARCH_RETURN_N,
    SearchIndex,
    catalog_index,
    instruction_keywords,
    product_document,
    suggested_queries,
    tokenize,
)


def item(asin: str, title: str) -> Product:
    return Product(
        asin=asin,
        title=title,
        category="c",
        query="q",
        path="p",
        price=1.0,
        attributes=(),
        options={},
        description="",
        features=(),
    )


def test_tokenize_keeps_decimals_and_drops_punctuation():
    assert tokenize("6.76 Fl-Oz (Pack of 2), l'eau") == ["6.76", "fl", "oz", "pack", "of", "2", "l", "eau"]


def test_hand_made_corpus_ranks_by_matching_terms():
    idx = SearchIndex(
        [
            item("A", "red running shoes"),
            item("B", "blue running shoes"),
            item("C", "red wine glass"),
            item("D", "garden hose"),
            *(item(f"F{i}", f"filler product number {i}") for i in range(6)),  # BM25 idf needs a corpus
        ]
    )
    hits = idx.search("red shoes")
    assert hits[0] == 0  # the only product with both words
    assert set(hits) == {0, 1, 2}
    assert hits[1:] in ((1, 2), (2, 1))  # products with no query word are not results
    assert idx.search("zebra") == ()


def test_fast_scores_equal_rank_bm25_reference():
    catalog = load_catalog(None, 400)
    idx = SearchIndex(catalog.products)
    for g in catalog.splits["eval"][:15]:
        for query in [*suggested_queries(g.instruction, g.attributes, g.options), "free free shampoo", "zzz"]:
            tokens = tokenize(query)
            reference = idx.bm25.get_scores(tokens)  # the library's own O(docs x terms) scoring
            np.testing.assert_allclose(idx.scores(query), reference, rtol=1e-12, atol=1e-12)
            order = np.argsort(-reference, kind="stable")[:SEARCH_RETURN_N]
            assert idx.search(query) == tuple(int(i) for i in order if reference[i] > 0)


def test_index_is_built_once_and_shared():
    a, b = ShopEnv(num_products=400), ShopEnv(num_products=400, split="eval")
    assert a.catalog is b.catalog and catalog_index(a.catalog) is catalog_index(b.catalog)


def test_document_follows_webshop_fields():
    p = load_catalog(None, 400).products[0]
    doc = product_document(p)
    assert p.title in doc and p.features[0] in doc and p.description in doc
    assert all(f"{k}: " in doc for k in p.options)
    assert p.features[1] not in doc  # WebShop indexes only the first bullet point


def test_instruction_keywords_drop_filler_and_price():
    words = instruction_keywords(
        "i'm looking for a long lasting 6.76 fl oz bottle of l'eau d'issey, "
        "and price lower than 100.00 dollars"
    )
    assert words == ["long", "lasting", "6.76", "fl", "oz", "bottle", "eau", "issey"]


@pytest.mark.parametrize("split", ["train", "eval"])
def test_expert_query_finds_a_winning_product(split):
    catalog = load_catalog()
    goals = catalog.splits[split][:500]
    found_target = found_winner = 0
    for g in goals:
        query = suggested_queries(g.instruction, g.attributes, g.options)[0]
        hits = [catalog.products[i] for i in catalog_index(catalog).search(query)]
        found_target += any(p.asin == g.asin for p in hits)
        if any(winning_options(p, g) is not None for p in hits):
            found_winner += 1
        else:
            # rare: the expert then falls back to the title; the title query must find the target.
            title_hits = catalog_index(catalog).search(" ".join(tokenize(catalog.by_asin[g.asin].title)))
            assert catalog.by_asin[g.asin] in [catalog.products[i] for i in title_hits]
    assert found_winner / len(goals) > 0.97
    assert found_target / len(goals) > 0.7  # often a near-duplicate that also earns 1 ranks above it
