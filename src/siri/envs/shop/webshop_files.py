"""WebShop's own data files: load them into a ``Catalog``, or write a catalog out in their format.

The files (from WebShop's setup script) and the fields read, as WebShop's loader reads them:

- ``items_shuffle*.json``: a list of products with ``asin``, ``name`` (title), ``full_description``,
  ``small_description`` (bullet points, list or string), ``pricing`` ("$12.99" or "$9.99 - $29.99"),
  ``customization_options`` (option type -> list of ``{"value": ..., "image": ...}``), ``category``,
  ``query``, ``product_category``. Products with asin "nan" or longer than 10 characters, and
  repeated asins, are skipped; option types and values are lowercased and "/" becomes " | ".
- ``items_ins_v2*.json``: asin -> ``{"attributes": [...], "instruction": ..., "instruction_attributes": [...]}``;
  products without attributes get WebShop's ``["DUMMY_ATTR"]``.
- ``items_human_ins.json`` (optional): asin -> list of ``{"instruction", "instruction_attributes",
  "instruction_options"}``; when present these human goals are used (WebShop's default), otherwise the
  synthetic ones (``instruction`` + every combination of the product's options).
- ``reviews*.json`` (optional): list of ``{"asin", "reviews": [{"title", "score"|"stars", "body"|"review"}], "average_rating"}``.

Differences, all for determinism: a price range is sampled with a seeded generator (WebShop uses the
global one), as are budgets; goals are shuffled with ``random.Random(233)`` (WebShop's seed) and the
first ``min(500, max(1, n // 10))`` form the eval split, the rest train.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from siri.envs.base import EnvError
from siri.envs.shop.catalog import Catalog, Goal, Product, Review
from siri.envs.shop.generate import price_bound, price_text
from siri.utils.io import atomic_write_json

GOAL_SHUFFLE_SEED = 233
PRICE_SEED = 0
DEFAULT_PRICE = 100.0


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise EnvError(f"WebShop file {path} is not valid JSON ({e}); re-download or regenerate it") from e
    except OSError as e:
        raise EnvError(f"cannot read WebShop file {path}: {e}") from e


def _pick(directory: Path, pattern: str, prefer_suffix: str = "") -> Path | None:
    found = sorted(directory.glob(pattern))
    if not found:
        return None
    for f in found:
        if prefer_suffix and f.name.endswith(prefer_suffix):
            return f
    if len(found) > 1:
        exact = [f for f in found if f.name == pattern.replace("*", "")]
        if exact:
            return exact[0]
        names = ", ".join(f.name for f in found)
        raise EnvError(
            f"{directory} holds several {pattern} files ({names}); pass the one to use as the catalog path"
        )
    return found[0]


def find_files(path: Path) -> dict[str, Path | None]:
    """The items file and its companions for ``path`` (a directory or an ``items_shuffle*.json`` file)."""
    if path.is_dir():
        items = _pick(path, "items_shuffle*.json")
        if items is None:
            raise EnvError(f"no items_shuffle*.json in {path}; point catalog= at WebShop's data directory")
        directory = path
    else:
        items, directory = path, path.parent
    suffix = items.name.removeprefix("items_shuffle")  # "_1000.json" pairs with items_ins_v2_1000.json
    return {
        "items": items,
        "attributes": _pick(directory, "items_ins_v2*.json", prefer_suffix=suffix),
        "human": _pick(directory, "items_human_ins*.json"),
        "reviews": _pick(directory, "reviews*.json"),
    }


def _parse_pricing(pricing: Any) -> list[float]:
    if not pricing:
        return []
    if isinstance(pricing, int | float):
        return [float(pricing)]
    values = []
    for part in str(pricing).split("$")[1:]:
        try:
            values.append(float(Decimal(re.sub(r"[^\d.]", "", part))))
        except InvalidOperation:
            continue
    return values[:2]


def _clean_value(value: Any) -> str:
    text = str(value).strip().replace("/", " | ").lower()
    return " ".join(text.replace("[", "(").replace("]", ")").split())


def _score(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _product(
    raw: dict[str, Any], attributes: dict[str, Any], reviews: dict[str, Any], rng: random.Random
) -> Product:
    asin = raw["asin"]
    pricing = _parse_pricing(raw.get("pricing"))
    price = DEFAULT_PRICE if not pricing else pricing[0] if len(pricing) == 1 else rng.uniform(*pricing)
    options: dict[str, tuple[str, ...]] = {}
    for name, contents in (raw.get("customization_options") or {}).items():
        if not contents:
            continue
        values = [_clean_value(c["value"] if isinstance(c, dict) else c) for c in contents]
        options[_clean_value(name)] = tuple(dict.fromkeys(v for v in values if v))
    bullets = raw.get("small_description") or []
    bullets = [bullets] if isinstance(bullets, str) else [str(b) for b in bullets]
    attrs = (attributes.get(asin) or {}).get("attributes") or ["DUMMY_ATTR"]
    review_info = reviews.get(asin, {})
    product_reviews = tuple(
        Review(
            title=str(r.get("title", "")),
            body=str(r.get("body", r.get("review", ""))),
            score=_score(r.get("score", r.get("stars"))),
        )
        for r in review_info.get("reviews", [])
    )
    rating = review_info.get("average_rating")
    return Product(
        asin=asin,
        title=str(raw.get("name") or ""),
        category=str(raw.get("category") or "unknown"),
        query=str(raw.get("query") or "").lower().strip(),
        path=str(raw.get("product_category") or ""),
        price=round(float(price), 2),
        attributes=tuple(str(a) for a in attrs),
        options={k: v for k, v in options.items() if v},
        description=str(raw.get("full_description") or ""),
        features=tuple(bullets),
        reviews=product_reviews,
        rating=float(rating) if isinstance(rating, int | float) else None,
    )


def _goal(
    product: Product, instruction: str, attributes: list[str], options: list[str], rng: random.Random
) -> Goal:
    bound = price_bound(product.price, rng)
    return Goal(
        asin=product.asin,
        instruction=instruction.strip().strip(".") + price_text(bound),
        category=product.category,
        attributes=tuple(attributes),
        options=tuple(_clean_value(o) for o in options),
        price_upper=bound,
        query=product.query,
        path=product.path,
        name=product.title,
    )


def load_webshop_catalog(path: Path, num_products: int | None = None) -> Catalog:
    """A ``Catalog`` from WebShop's data files (see module docstring for the format)."""
    files = find_files(path)
    items_path = files["items"]
    assert items_path is not None
    raw_products = _read_json(items_path)
    if not isinstance(raw_products, list):
        raise EnvError(f"{items_path} must hold a JSON list of products, got {type(raw_products).__name__}")
    if num_products is not None:
        raw_products = raw_products[:num_products]
    attributes = _read_json(files["attributes"]) if files["attributes"] else {}
    human = _read_json(files["human"]) if files["human"] else None
    reviews = {r["asin"]: r for r in _read_json(files["reviews"])} if files["reviews"] else {}

    price_rng = random.Random(PRICE_SEED)
    products: list[Product] = []
    seen: set[str] = set()
    for n, raw in enumerate(raw_products):
        asin = raw.get("asin") if isinstance(raw, dict) else None
        if not isinstance(asin, str):
            raise EnvError(f"{items_path}: product #{n} has no string 'asin' field")
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        try:
            products.append(_product(raw, attributes, reviews, price_rng))
        except (KeyError, TypeError, ValueError) as e:
            raise EnvError(f"{items_path}: product {asin} is malformed ({e!r})") from e
    if not products:
        raise EnvError(f"{items_path} holds no usable products")

    goal_rng = random.Random(PRICE_SEED + 1)
    goals: list[Goal] = []
    for product in products:
        if human is not None:
            for ins in human.get(product.asin, []):
                if ins.get("instruction_attributes"):
                    goals.append(
                        _goal(
                            product,
                            ins["instruction"],
                            ins["instruction_attributes"],
                            ins.get("instruction_options") or [],
                            goal_rng,
                        )
                    )
        else:
            info = attributes.get(product.asin) or {}
            if not info.get("instruction") or not info.get("instruction_attributes"):
                continue
            names = sorted(product.options)
            for combo in itertools.product(*(product.options[k] for k in names)):
                text = ", and ".join(f"{k}: {v}" for k, v in zip(names, combo, strict=True))
                instruction = info["instruction"] + (f" with {text}" if text else "")
                goals.append(
                    _goal(product, instruction, info["instruction_attributes"], list(combo), goal_rng)
                )
    if not goals:
        raise EnvError(
            f"no goals in {path}: add items_human_ins.json or items_ins_v2*.json with instructions"
        )
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    n_eval = min(500, max(1, len(goals) // 10))
    stat = items_path.stat()
    return Catalog(
        key=f"webshop:{items_path.resolve()}:{stat.st_mtime_ns}:{num_products}",
        products=products,
        splits={"eval": goals[:n_eval], "train": goals[n_eval:]},
    )


def export_webshop(catalog: Catalog, directory: str | Path) -> dict[str, Path]:
    """Write ``catalog`` as WebShop's files (items, attributes, human instructions, reviews) into ``directory``."""
    directory = Path(directory)
    items, attrs, reviews = [], {}, []
    for p in catalog.products:
        items.append(
            {
                "asin": p.asin,
                "name": p.title,
                "full_description": p.description,
                "small_description": list(p.features),
                "pricing": f"${p.price:.2f}",
                "customization_options": {
                    k: [{"value": v, "image": None} for v in vs] for k, vs in p.options.items()
                },
                "category": p.category,
                "query": p.query,
                "product_category": p.path,
                "images": [""],
            }
        )
        attrs[p.asin] = {"attributes": list(p.attributes)}
        reviews.append(
            {
                "asin": p.asin,
                "reviews": [{"title": r.title, "score": r.score, "body": r.body} for r in p.reviews],
                "average_rating": p.rating if p.rating is not None else "N.A.",
            }
        )
    human: dict[str, list[dict[str, Any]]] = {}
    for split in ("eval", "train"):
        for g in catalog.splits.get(split, []):
            human.setdefault(g.asin, []).append(
                {
                    "instruction": re.sub(r",\s*and price lower than .*$", "", g.instruction),
                    "instruction_attributes": list(g.attributes),
                    "instruction_options": list(g.options),
                }
            )
    paths = {
        "items": directory / "items_shuffle.json",
        "attributes": directory / "items_ins_v2.json",
        "human": directory / "items_human_ins.json",
        "reviews": directory / "reviews.json",
    }
    for key, obj in (("items", items), ("attributes", attrs), ("human", human), ("reviews", reviews)):
        atomic_write_json(paths[key], obj)
    return paths
