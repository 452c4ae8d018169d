"""BM25 search over a catalog, WebShop's search engine without Java.

WebShop indexes each product's text with Lucene and shows the top 50 hits. Here ``rank_bm25``'s
``BM25Okapi`` (k1 1.5, b 0.75) provides the statistics (idf, document lengths); scoring then walks
per-term posting lists instead of every document, which gives exactly ``BM25Okapi.get_scores`` (the
test suite checks it against the library) at a small fraction of the cost. Results are cached per
query: rollouts repeat the same queries all the time.

An index is built once per catalog (``catalog_index``, by ``Catalog.key``) and shared by every env on
that catalog, including copies of the catalog unpickled in the same process.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence

import numpy as np
from rank_bm25 import BM25Okapi

from siri.envs.shop.catalog import Catalog, Product

SEARCH_RETURN_N = 50
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def tokenize(text: str) -> list[str]:
    """Lowercase words and numbers ("6.76 fl oz" -> ["6.76", "fl", "oz"]); the same for documents and queries."""
    return _TOKEN.findall(text.lower())


def product_document(product: Product) -> str:
    """What WebShop indexes: title, description, the *first* bullet point, and "type: v1, v2" option text."""
    options = ", and ".join(f"{kind}: {', '.join(values)}" for kind, values in product.options.items())
    first_bullet = product.features[0] if product.features else ""
    return " ".join((product.title, product.description, first_bullet, options))


class SearchIndex:
    """Top-``SEARCH_RETURN_N`` BM25 search over a fixed list of products (ties keep catalog order)."""

    def __init__(self, products: Sequence[Product], cache_size: int = 8192) -> None:
        corpus = [tokenize(product_document(p)) for p in products]
        self.bm25 = BM25Okapi(corpus)
        k1, b = self.bm25.k1, self.bm25.b
        doc_len = np.asarray(self.bm25.doc_len, dtype=np.float64)
        norm = k1 * (1 - b + b * doc_len / self.bm25.avgdl)
        postings: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        for i, freqs in enumerate(self.bm25.doc_freqs):
            for term, tf in freqs.items():
                postings[term][0].append(i)
                postings[term][1].append(tf)
        # term -> (doc ids, BM25 term weight in those docs), the same arithmetic as BM25Okapi.get_scores
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, (ids, tfs) in postings.items():
            idx = np.asarray(ids, dtype=np.int64)
            tf = np.asarray(tfs, dtype=np.float64)
            weight = (self.bm25.idf.get(term) or 0) * (tf * (k1 + 1) / (tf + norm[idx]))
            self._postings[term] = (idx, weight)
        self.n_docs = len(corpus)
        self._cache: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every product for ``query`` (equal to ``BM25Okapi.get_scores``)."""
        scores = np.zeros(self.n_docs, dtype=np.float64)
        for term in tokenize(query):
            hit = self._postings.get(term)
            if hit is not None:
                scores[hit[0]] += hit[1]
        return scores

    def search(self, query: str) -> tuple[int, ...]:
        """Indices of the top products for ``query``: score > 0, best first, at most ``SEARCH_RETURN_N``."""
        key = " ".join(tokenize(query))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        scores = self.scores(key)
        top = np.argsort(-scores, kind="stable")[:SEARCH_RETURN_N]
        result = tuple(int(i) for i in top if scores[i] > 0)
        with self._lock:
            self._cache[key] = result
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result



_INDEXES: dict[str, SearchIndex] = {}
_INDEXES_LOCK = threading.Lock()


def catalog_index(catalog: Catalog) -> SearchIndex:
    """The search index over ``catalog``, built on first use and shared by every env (keyed by ``catalog.key``)."""
    index = _INDEXES.get(catalog.key)
    if index is None:
        with _INDEXES_LOCK:
            index = _INDEXES.get(catalog.key)
            if index is None:
                index = _INDEXES[catalog.key] = SearchIndex(catalog.products)
    return index

# ------------------------------------------------------------------------------ queries from instructions

QUERY_STOPWORDS = frozenset(
    [
        "i",
        "i'm",
        "im",
        "am",
        "a",
        "an",
        "the",
        "need",
        "want",
        "would",
        "like",
        "looking",
        "look",
        "for",
        "find",
        "me",
        "can",
        "you",
        "get",
        "please",
        "search",
        "buy",
        "some",
        "that",
        "is",
        "are",
        "with",
        "and",
        "in",
        "of",
        "to",
        "it",
        "which",
        "be",
        "my",
        "size",
        "color",
        "colour",
        "flavor",
        "scent",
        "style",
        "price",
        "lower",
        "than",
        "dollars",
        "under",
        "less",
    ]
)
_PRICE_CLAUSE = re.compile(r",?\s*and price lower than .*$")


def instruction_keywords(instruction: str) -> list[str]:
    """The instruction's searchable words, in order, without filler, option-type words or the price clause."""
    words: list[str] = []
    for w in tokenize(_PRICE_CLAUSE.sub("", instruction.lower())):
        if w in QUERY_STOPWORDS or (len(w) == 1 and not w.isdigit()) or w in words:
            continue
        words.append(w)
    return words


def suggested_queries(instruction: str, attributes: Sequence[str], options: Sequence[str]) -> list[str]:
    """Up to three search queries made only of the instruction's own words, most specific first.

    1. all key words; 2. without the option values; 3. without option values and attributes (the
    product noun, and the brand if named). Duplicates and empty queries are dropped.
    """
    words = instruction_keywords(instruction)
    option_words = set(tokenize(" ".join(options)))
    attribute_words = set(tokenize(" ".join(attributes)))
    candidates = [
        words,
        [w for w in words if w not in option_words],
        [w for w in words if w not in option_words and w not in attribute_words],
    ]
    queries: list[str] = []
    for c in candidates:
        q = " ".join(c)
        if q and q not in queries:
            queries.append(q)
    return queries
