"""The generated catalog (deterministic, realistic, hard) and the loader of WebShop's own files."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from siri.envs import EnvError
from siri.envs.shop import SPLITS, ShopEnv, catalog_texts, load_catalog, vocabulary_texts
from siri.envs.shop.generate import generate_catalog
from siri.envs.shop.reward import attribute_present, options_match, product_text, shop_reward, winning_options
from siri.envs.shop.search import catalog_index, suggested_queries, tokenize
from siri.envs.shop.specs import CATEGORIES
from siri.envs.shop.webshop_files import export_webshop, load_webshop_catalog

# ----------------------------------------------------------------------------------- generated catalog


def test_default_catalog_shape():
    catalog = load_catalog()
    assert len(catalog.products) == 5000
    assert len(catalog.splits["eval"]) == 500 and len(catalog.splits["train"]) == 4500
    counts = Counter(p.category for p in catalog.products)
    assert set(counts) == {"beauty", "grocery", "electronics", "fashion", "home"}
    assert min(counts.values()) > 900
    assert len({p.query for p in catalog.products}) == 40
    assert {g.asin for g in catalog.splits["eval"]}.isdisjoint(g.asin for g in catalog.splits["train"])


def test_generation_is_deterministic_and_prefix_stable():
    a, b = generate_catalog(300, seed=5), generate_catalog(300, seed=5)
    assert a.products == b.products and a.splits == b.splits
    big = generate_catalog(420, seed=5)
    assert big.products[:300] == a.products  # product i does not depend on the catalog size
    assert generate_catalog(300, seed=6).products != a.products


def test_generation_does_not_depend_on_hash_randomization():
    code = (
        "from siri.envs.shop.generate import generate_catalog; c = generate_catalog(120, 3); "
        "print(c.products[-1].asin, c.products[-1].title, c.splits['train'][-1].instruction)"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_attributes_and_options_never_blur_within_a_type():
    """A product lacking an attribute of its type's vocabulary must not get credit for it (else near-duplicates
    would not differ), and no two offered option values may satisfy the same goal option."""
    vocab = {t.query: (*t.attributes, *c.shared_attributes) for c in CATEGORIES for t in c.types}
    for p in load_catalog().products:
        text = product_text(p)
        for a in vocab[p.query]:
            assert attribute_present(a, p.attributes, text) == (a in p.attributes), (p.asin, a)
        for kind, values in p.options.items():
            for i, v in enumerate(values):
                for w in values[i + 1 :]:
                    assert not options_match(kind, v, w), (p.asin, v, w)
                assert v not in text, (p.asin, v)


def test_catalog_is_hard_near_duplicates_and_budgets_matter():
    catalog = load_catalog()
    near_miss = top1_winner = 0
    goals = catalog.splits["eval"]
    for g in goals:
        hits = [
            catalog.products[i]
            for i in catalog_index(catalog).search(suggested_queries(g.instruction, g.attributes, g.options)[0])[:10]
        ]
        rewards = []
        for p in hits:
            options = winning_options(p, g)
            if options is None:  # best effort: the goal's option values where offered
                options = {k: next((v for v in vs if v in g.options), vs[0]) for k, vs in p.options.items()}
            rewards.append(shop_reward(p, g, options).reward)
        near_miss += any(0.5 <= r < 1 for r in rewards)
        top1_winner += rewards[0] == 1.0
    assert near_miss / len(goals) > 0.8  # the first page nearly always holds a tempting wrong product
    assert 0.3 < top1_winner / len(goals) < 0.8  # taking the first hit is not enough


def test_goals_read_like_webshop_instructions():
    for g in load_catalog().splits["eval"][:50]:
        target = load_catalog().by_asin[g.asin]
        assert g.instruction.startswith(("i ", "i'm ", "find", "can you", "please"))
        assert g.instruction.endswith(f", and price lower than {g.price_upper:.2f} dollars")
        assert g.price_upper - 40 <= target.price < g.price_upper - 10 + 1e-9  # 2nd..4th multiple of 10 above
        assert all(a in g.instruction for a in g.attributes) and all(o in g.instruction for o in g.options)
        assert winning_options(target, g) is not None


def test_catalog_texts_cover_every_observation_word():
    env = ShopEnv(num_products=400)
    vocab = {w for text in catalog_texts(env.catalog) for w in tokenize(text)}
    assert set(vocabulary_texts(None, 400)) == set(catalog_texts(env.catalog)) and SPLITS == ("train", "eval")
    rng = random.Random(0)
    for seed in range(30):
        obs = env.reset(seed)
        for _ in range(8):
            for text in (obs.text, *obs.admissible_actions):
                assert set(tokenize(text)) <= vocab, set(tokenize(text)) - vocab
            step = env.step(rng.choice(obs.admissible_actions) if rng.random() < 0.6 else env.expert_action())
            obs = step.observation
            if step.done:
                break


# ------------------------------------------------------------------------------------ WebShop's files


def write_webshop_files(directory: Path, human: bool = True) -> None:
    items = [
        {
            "asin": "B000AAAAAA",
            "name": "Lumix Long Lasting Eau de Parfum Spray for Women",
            "full_description": "An elegant floral scent.",
            "small_description": ["Long lasting", "Made in France"],
            "pricing": "$45.50",
            "category": "beauty",
            "query": "eau de parfum",
            "product_category": "Beauty & Personal Care › Fragrance › Women's › Eau de Parfum",
            "customization_options": {
                "Size": [{"value": "1.7 Fl Oz", "image": None}, {"value": "3.4 Fl Oz", "image": None}]
            },
            "images": ["x.jpg"],
        },
        {
            "asin": "B000BBBBBB",
            "name": "Acme Waterproof Hiking Boots",
            "full_description": "",
            "small_description": "Rubber sole",
            "pricing": "$60.00 - $80.00",
            "category": "fashion",
            "query": "hiking boots",
            "product_category": "Clothing, Shoes & Jewelry › Men › Shoes › Boots",
            "customization_options": {"Color": [{"value": "Black/Brown", "image": None}], "Size": None},
            "images": ["y.jpg"],
        },
        {
            "asin": "B000CCCCCC",
            "name": "Plain Notebook",
            "full_description": "Paper.",
            "small_description": [],
            "pricing": "",
            "category": "home",
            "query": "notebook",
            "product_category": "Office › Paper",
            "customization_options": {},
            "images": [""],
        },
        {"asin": "nan", "name": "skipped", "pricing": "$1.00"},
        {"asin": "B000AAAAAA", "name": "duplicate, skipped", "pricing": "$1.00"},
    ]
    attrs = {
        "B000AAAAAA": {
            "attributes": ["long lasting", "floral scent"],
            "instruction": "i want a long lasting eau de parfum",
            "instruction_attributes": ["long lasting"],
        },
        "B000BBBBBB": {
            "attributes": ["rubber sole"],
            "instruction": "i need waterproof boots",
            "instruction_attributes": ["waterproof"],
        },
    }
    (directory / "items_shuffle_1000.json").write_text(json.dumps(items))
    (directory / "items_ins_v2_1000.json").write_text(json.dumps(attrs))
    (directory / "reviews.json").write_text(
        json.dumps(
            [
                {
                    "asin": "B000AAAAAA",
                    "reviews": [{"title": "Love it", "stars": "5.0", "review": "Great."}],
                    "average_rating": 5.0,
                }
            ]
        )
    )
    if human:
        (directory / "items_human_ins.json").write_text(
            json.dumps(
                {
                    "B000AAAAAA": [
                        {
                            "instruction": "i need a long lasting 3.4 fl oz eau de parfum.",
                            "instruction_attributes": ["long lasting"],
                            "instruction_options": ["3.4 fl oz"],
                        },
                        {
                            "instruction": "no attributes: skipped",
                            "instruction_attributes": [],
                            "instruction_options": [],
                        },
                    ],
                    "B000BBBBBB": [
                        {
                            "instruction": "i want waterproof hiking boots in black",
                            "instruction_attributes": ["waterproof"],
                            "instruction_options": ["black"],
                        }
                    ],
                    "B000CCCCCC": [  # no product is spiral bound: no purchase can earn 1
                        {
                            "instruction": "i need a spiral bound notebook",
                            "instruction_attributes": ["spiral bound"],
                            "instruction_options": [],
                        }
                    ],
                }
            )
        )


def test_webshop_loader_reads_the_original_format(tmp_path):
    write_webshop_files(tmp_path)
    catalog = load_webshop_catalog(tmp_path)
    assert [p.asin for p in catalog.products] == ["B000AAAAAA", "B000BBBBBB", "B000CCCCCC"]
    parfum, boots, notebook = catalog.products
    assert parfum.price == 45.5 and 60.0 <= boots.price <= 80.0 and notebook.price == 100.0
    assert parfum.options == {"size": ("1.7 fl oz", "3.4 fl oz")}
    assert boots.options == {"color": ("black | brown",)}  # "/" -> " | ", empty option types dropped
    assert boots.features == ("Rubber sole",) and notebook.attributes == ("DUMMY_ATTR",)
    assert parfum.reviews[0].score == 5 and parfum.rating == 5.0 and notebook.rating is None
    goals = catalog.splits["train"] + catalog.splits["eval"]
    assert len(goals) == 3 and len(catalog.splits["eval"]) == 1  # the attribute-less instruction is skipped
    by_asin = {g.asin: g for g in goals}
    g = by_asin["B000AAAAAA"]
    assert g.instruction.startswith("i need a long lasting 3.4 fl oz eau de parfum, and price lower than ")
    assert g.price_upper in (60.0, 70.0, 80.0) and g.options == ("3.4 fl oz",) and g.query == "eau de parfum"


def test_webshop_catalog_runs_in_the_env_and_expert_wins(tmp_path):
    write_webshop_files(tmp_path)
    for split in ("train", "eval"):
        env = ShopEnv(split=split, catalog=str(tmp_path))
        for seed in range(env.split_size()):
            env.reset(seed)
            while True:
                step = env.step(env.expert_action())
                if step.done:
                    break
            if env.goal.asin == "B000CCCCCC":  # unsatisfiable: the expert buys the target as best it can
                assert step.info["asin"] == "B000CCCCCC" and step.reward == 0.5  # (0 + 0 + 1) / (1 + 0 + 1)
            else:
                assert step.won and step.reward == 1.0


def test_webshop_synthetic_goals_without_human_file(tmp_path):
    write_webshop_files(tmp_path, human=False)
    catalog = load_webshop_catalog(tmp_path / "items_shuffle_1000.json")
    goals = catalog.splits["train"] + catalog.splits["eval"]
    texts = sorted(g.instruction.split(", and price")[0] for g in goals)
    assert texts == [
        "i need waterproof boots with color: black | brown",
        "i want a long lasting eau de parfum with size: 1.7 fl oz",
        "i want a long lasting eau de parfum with size: 3.4 fl oz",
    ]


def test_webshop_loader_reports_bad_input(tmp_path):
    with pytest.raises(EnvError, match="does not exist"):
        load_catalog(str(tmp_path / "missing"))
    with pytest.raises(EnvError, match="no items_shuffle"):
        load_webshop_catalog(tmp_path)
    (tmp_path / "items_shuffle.json").write_text("[{")
    with pytest.raises(EnvError, match="not valid JSON"):
        load_webshop_catalog(tmp_path)
    (tmp_path / "items_shuffle.json").write_text(json.dumps([{"name": "no asin"}]))
    with pytest.raises(EnvError, match="no string 'asin'"):
        load_webshop_catalog(tmp_path)


def test_export_then_load_round_trips(tmp_path):
    catalog = load_catalog(None, 200)
    export_webshop(catalog, tmp_path)
    loaded = load_webshop_catalog(tmp_path)
    assert loaded.products == catalog.products
    ours = {(g.asin, g.attributes, g.options) for goals in catalog.splits.values() for g in goals}
    theirs = {(g.asin, g.attributes, g.options) for goals in loaded.splits.values() for g in goals}
    assert ours == theirs
