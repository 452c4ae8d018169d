"""The built-in catalog: products in families of near-duplicates, and WebShop-style goals over them.

Products come in *families*: a base product plus variants that differ from it in exactly one thing —
one attribute swapped, a different set of offered options, a price above any budget of the base's
goals, another brand — so a shopper who reads only the title, or skips the options, or ignores the
budget, buys the wrong thing. Families are generated round-robin over the product types, so any
``num_products`` gives a balanced catalog and product *i* does not depend on ``num_products``.

Everything is drawn from integer-seeded ``random.Random`` streams (product family by family, goal
product by product), so the catalog is identical on every machine and Python run.

Goals follow WebShop's: one per product, naming 1-3 of its attributes (always one that no sibling
type in the category has, so a different kind of product cannot satisfy them), a value for most of
its option types, and a budget drawn WebShop's way: two of the first four multiples of 10 above the
price, keep the larger. Split: products whose index is a multiple of 10 hold the eval goals (at most
500), the rest are train goals; each split is shuffled with WebShop's goal seed (233).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from siri.envs.shop.catalog import Catalog, Goal, Product, Review
from siri.envs.shop.reward import attribute_present, options_match, product_text
from siri.envs.shop.specs import BRAND_HEADS, BRAND_TAILS, CATEGORIES, Category, ProductType

EVAL_GOALS_MAX = 500
FAMILY_VARIANTS = ("attribute", "attribute", "options", "price", "brand", "mixed")


@dataclass
class _Family:
    brand: str
    descriptor: str
    attributes: list[str]
    options: dict[str, list[str]]
    price: float


def _brands(rng: random.Random) -> list[str]:
    names = sorted({h + t for h in BRAND_HEADS for t in BRAND_TAILS})
    rng.shuffle(names)
    return names


def _price(rng: random.Random, low: float, high: float) -> float:
    value = rng.uniform(low, high)
    return math.floor(value) + rng.choice((0.99, 0.49, 0.95, 0.0, 0.79))


def _distinct_attributes(ptype: ProductType, category: Category) -> tuple[str, ...]:
    """Type attributes that no other type of the category offers."""
    others = {a for t in category.types if t is not ptype for a in t.attributes}
    return tuple(a for a in ptype.attributes if a not in others)


def _compatible(attr: str, chosen: list[str]) -> bool:
    return not any(attribute_present(attr, (c,), "") or attribute_present(c, (attr,), "") for c in chosen)


def _pick_attributes(rng: random.Random, ptype: ProductType, category: Category) -> list[str]:
    distinct = list(_distinct_attributes(ptype, category))
    chosen = [rng.choice(distinct)]
    pool = [a for a in ptype.attributes if a not in chosen]
    rng.shuffle(pool)
    want_type = rng.choice((1, 2, 2))
    for a in pool:
        if len(chosen) > want_type:
            break
        if _compatible(a, chosen):
            chosen.append(a)
    shared = list(category.shared_attributes)
    rng.shuffle(shared)
    for a in shared[: rng.choice((1, 1, 2))]:
        if _compatible(a, chosen):
            chosen.append(a)
    return chosen


def _pick_options(
    rng: random.Random, ptype: ProductType, avoid: dict[str, list[str]] | None = None
) -> dict[str, list[str]]:
    """A subset of each option type's values, never two values the reward would confuse."""
    options: dict[str, list[str]] = {}
    for kind, values in ptype.options.items():
        pool = list(values)
        rng.shuffle(pool)
        if avoid and kind in avoid:  # an option variant lacks one of the base's values
            missing = rng.choice(avoid[kind])
            pool = [v for v in pool if v != missing]
        want = rng.randint(min(2, len(pool)), min(5, len(pool)))
        picked: list[str] = []
        for v in pool:
            if len(picked) == want:
                break
            if not any(options_match(kind, v, p) for p in picked):
                picked.append(v)
        options[kind] = sorted(picked, key=values.index)
    return options


def _title(brand: str, descriptor: str, ptype: ProductType, attributes: list[str], rng: random.Random) -> str:
    shown = attributes[: rng.choice((1, 2, 2, 3))]
    extras = ", ".join(" ".join(w.capitalize() for w in a.split()) for a in shown)
    return f"{brand} {descriptor} {ptype.noun} - {extras}"


def _texts(
    brand: str,
    descriptor: str,
    ptype: ProductType,
    category: Category,
    attributes: list[str],
    rng: random.Random,
) -> tuple[str, tuple[str, ...]]:
    """Description (names one or two attributes, like marketing prose) and bullet points (all of them)."""
    noun = ptype.noun.lower()
    benefits = list(category.benefits)
    rng.shuffle(benefits)
    named = attributes[: rng.choice((1, 2))]
    description = (
        f"The {brand} {descriptor.lower()} {noun} is {_join(named)}. "
        f"It is {benefits[0]}, and {benefits[1]}. Order yours today."
    )
    features = [f"{a.upper()}: {benefits[(i + 2) % len(benefits)]}" for i, a in enumerate(attributes)]
    features.append(f"WHAT YOU GET: one {noun} from {brand}")
    return description, tuple(features)


def _reviews(rng: random.Random, category: Category, noun: str) -> tuple[tuple[Review, ...], float | None]:
    reviews = []
    for _ in range(rng.choice((0, 1, 2, 2, 3))):
        line = rng.choice(category.review_lines)
        score = rng.choice((1, 2, 3, 4, 4, 5, 5, 5))
        reviews.append(
            Review(title=line, body=f"i bought this {noun.lower()} last month and {line}.", score=score)
        )
    rating = round(sum(r.score for r in reviews) / len(reviews), 1) if reviews else None
    return tuple(reviews), rating


def _variants(
    rng: random.Random, base: _Family, ptype: ProductType, category: Category, brands: list[str]
) -> list[_Family]:
    members = [base]
    for kind in FAMILY_VARIANTS:
        v = _Family(
            base.brand,
            base.descriptor,
            list(base.attributes),
            {k: list(x) for k, x in base.options.items()},
            base.price,
        )
        if kind in ("attribute", "mixed"):
            swappable = [i for i, a in enumerate(v.attributes) if a in ptype.attributes]
            i = rng.choice(swappable)
            keep = [a for j, a in enumerate(v.attributes) if j != i]
            fresh = [
                a for a in ptype.attributes if a not in base.attributes and _compatible(a, base.attributes)
            ]
            distinct = _distinct_attributes(ptype, category)
            if not any(a in distinct for a in keep):  # every product keeps one type-distinct attribute
                fresh = [a for a in fresh if a in distinct]
            if not fresh:
                continue
            v.attributes = [*keep[:i], rng.choice(fresh), *keep[i:]]
        if kind in ("options", "mixed"):
            v.options = _pick_options(rng, ptype, avoid=base.options)
        if kind == "price":
            # Above the largest budget any goal on the base can have (4th multiple of 10 above its price).
            v.price = math.floor(base.price + 41 + base.price * rng.uniform(0.05, 0.4)) + 0.99
        if kind in ("brand", "mixed"):
            v.brand = rng.choice([b for b in brands if b != base.brand])
        if kind == "mixed":
            v.descriptor = rng.choice(ptype.descriptors)
        members.append(v)
    return members


def _asin(rng: random.Random, used: set[str]) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while True:
        asin = "B0" + "".join(rng.choice(alphabet) for _ in range(8))
        if asin not in used:
            used.add(asin)
            return asin


def generate_products(num_products: int, seed: int) -> tuple[list[Product], list[int]]:
    """``num_products`` products and each one's family number; product *i* does not depend on ``num_products``."""
    rng = random.Random(seed)
    brands = _brands(rng)
    per_category = len(brands) // len(CATEGORIES)
    category_brands = {
        c.name: brands[i * per_category : (i + 1) * per_category][:24] for i, c in enumerate(CATEGORIES)
    }
    types = [(c, t) for c in CATEGORIES for t in c.types]
    products: list[Product] = []
    families: list[int] = []
    used: set[str] = set()
    family_no = 0
    while len(products) < num_products:
        category, ptype = types[family_no % len(types)]
        frng = random.Random(seed * 1_000_003 + family_no)
        cbrands = category_brands[category.name]
        base = _Family(
            brand=frng.choice(cbrands),
            descriptor=frng.choice(ptype.descriptors),
            attributes=_pick_attributes(frng, ptype, category),
            options=_pick_options(frng, ptype),
            price=_price(frng, *ptype.price),
        )
        for member in _variants(frng, base, ptype, category, cbrands):
            if len(products) == num_products:
                break
            attrs = list(member.attributes)
            frng.shuffle(attrs)
            description, features = _texts(member.brand, member.descriptor, ptype, category, attrs, frng)
            reviews, rating = _reviews(frng, category, ptype.noun)
            products.append(
                Product(
                    asin=_asin(frng, used),
                    title=_title(member.brand, member.descriptor, ptype, attrs, frng),
                    category=category.name,
                    query=ptype.query,
                    path=ptype.path,
                    price=round(member.price, 2),
                    attributes=tuple(attrs),
                    options={k: tuple(v) for k, v in member.options.items()},
                    description=description,
                    features=features,
                    reviews=reviews,
                    rating=rating,
                )
            )
            families.append(family_no)
        family_no += 1
    return products, families


# ---------------------------------------------------------------------------------------------- goals

OPENERS = (
    "i need {art}",
    "i'm looking for {art}",
    "i want {art}",
    "find me {art}",
    "i would like {art}",
    "can you get me {art}",
    "i am looking for {art}",
    "please find {art}",
)
OPTION_PHRASES = {
    "color": ("in {v} color", "in {v}", "with color {v}"),
    "size": ("in size {v}", "in {v} size", "with size {v}"),
    "scent": ("with {v} scent", "in {v} scent"),
    "flavor": ("in {v} flavor", "with {v} flavor"),
}


def _article(phrase: str) -> str:
    head = phrase.split()[0]
    if head.endswith("s") and not head.endswith("ss") and " of " not in phrase:
        return ""  # plural: "i need protein bars"
    return "an" if phrase[0] in "aeiou" else "a"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def price_bound(price: float, rng: random.Random) -> float | None:
    """WebShop's budget: two of the first four multiples of 10 above the price, the larger one."""
    above = [10.0 * i for i in range(1, 100) if 10.0 * i > price][:4]
    if len(above) < 2:
        return None
    return max(rng.sample(above, 2))


def price_text(bound: float | None) -> str:
    return "" if bound is None else f", and price lower than {bound:.2f} dollars"


@functools.lru_cache(maxsize=65536)
def _has_attribute(product: Product, attribute: str) -> bool:
    if attribute in product.attributes:
        return True
    return attribute_present(attribute, product.attributes, product_text(product))


@functools.lru_cache(maxsize=65536)
def _offers(product: Product, kind: str, value: str) -> bool:
    return any(options_match(kind, v, value) for v in product.options.get(kind, ()))


def make_goal(
    product: Product, siblings: list[Product], ptype: ProductType, category: Category, rng: random.Random
) -> Goal:
    """A goal for ``product`` that, where it can, rules out its near-duplicate ``siblings``.

    Like a shopper who knows what they want: each goal attribute and option is, with probability 0.75,
    one that some still-matching sibling lacks (else drawn at random), so reading titles alone rarely
    suffices. One attribute is always type-distinct (see module docstring).
    """
    distinct = set(_distinct_attributes(ptype, category))
    rivals = list(siblings)

    def pick(candidates: list[str], lacks: Callable[[Product, str], bool]) -> str:
        useful = [c for c in candidates if any(lacks(r, c) for r in rivals)]
        choice = rng.choice(useful) if useful and rng.random() < 0.75 else rng.choice(candidates)
        rivals[:] = [r for r in rivals if not lacks(r, choice)]
        return choice

    def lacks_attribute(r: Product, a: str) -> bool:
        return not _has_attribute(r, a)

    attributes = [pick([a for a in product.attributes if a in distinct], lacks_attribute)]
    for _ in range(rng.choice((0, 1, 1, 2))):
        attributes.append(pick([a for a in product.attributes if a not in attributes], lacks_attribute))
    rng.shuffle(attributes)
    kinds = [k for k in product.options if rng.random() < 0.85] or [next(iter(product.options))]
    chosen = {k: pick(list(product.options[k]), lambda r, v, k=k: not _offers(r, k, v)) for k in kinds}
    bound = price_bound(product.price, rng)

    noun = rng.choice(ptype.goal_nouns)
    brand = product.title.split()[0].lower() + " " if rng.random() < 0.15 else ""
    style = rng.randrange(3)
    if style == 0:
        body = f"{brand}{' '.join(attributes)} {noun}"
    elif style == 1:
        body = f"{brand}{noun} that is {_join(attributes)}"
    else:
        body = f"{brand}{noun} with {_join(attributes)}"
    text = rng.choice(OPENERS).format(art=_article(body)).rstrip() + " " + body
    phrases = [rng.choice(OPTION_PHRASES[k]).format(v=v) for k, v in chosen.items()]
    if phrases:
        text += " " + _join(phrases)
    text += price_text(bound)
    return Goal(
        asin=product.asin,
        instruction=text,
        category=product.category,
        attributes=tuple(attributes),
        options=tuple(chosen.values()),
        price_upper=bound,
        query=product.query,
        path=product.path,
        name=product.title,
    )


def generate_catalog(num_products: int, seed: int) -> Catalog:
    """The generated catalog: products, one goal per product, the fixed train/eval split."""
    products, families = generate_products(num_products, seed)
    members: dict[int, list[Product]] = {}
    for product, family in zip(products, families, strict=True):
        members.setdefault(family, []).append(product)
    types = {t.query: (c, t) for c in CATEGORIES for t in c.types}
    train: list[Goal] = []
    evals: list[Goal] = []
    for i, (product, family) in enumerate(zip(products, families, strict=True)):
        category, ptype = types[product.query]
        siblings = [p for p in members[family] if p is not product]
        goal = make_goal(product, siblings, ptype, category, random.Random(seed * 7_919 + i))
        if i % 10 == 0 and len(evals) < EVAL_GOALS_MAX:
            evals.append(goal)
        else:
            train.append(goal)
    # Seeds index the goals: shuffle (with WebShop's goal seed) so that consecutive seeds mix categories.
    random.Random(233).shuffle(train)
    random.Random(233).shuffle(evals)
    return Catalog(
        key=f"generated:seed={seed}:n={num_products}",
        products=products,
        splits={"train": train, "eval": evals},
    )
