"""The one place catalogs are loaded (and cached per process): the generated one or WebShop's files.

Why generate instead of shipping a file: generation takes about a second, is bit-for-bit
deterministic (integer-seeded ``random.Random``, no ``hash()``), and leaves no file that could be
stale or corrupt; each process builds its catalog once and every env instance shares it (and its
search index, ``search.catalog_index``).
"""

from __future__ import annotations

import threading
from pathlib import Path

from siri.envs.base import EnvError
from siri.envs.shop.catalog import Catalog
from siri.envs.shop.generate import generate_catalog
from siri.envs.shop.webshop_files import load_webshop_catalog

DEFAULT_NUM_PRODUCTS = 5000
CATALOG_SEED = 2606

_CACHE: dict[tuple[str, int | None], Catalog] = {}
_CACHE_LOCK = threading.Lock()


def load_catalog(catalog: str | None = None, num_products: int | None = None) -> Catalog:
    """The catalog named by ``catalog``, built once per process.

    ``catalog`` is ``None`` or ``"generated"`` for the built-in generated catalog (``num_products``
    products, default 5000), or a path to WebShop's data: a directory holding ``items_shuffle*.json``
    (and optionally ``items_ins_v2*.json``, ``items_human_ins.json``, ``reviews.json``) or the
    ``items_shuffle*.json`` file itself; ``num_products`` then keeps the first N products, as WebShop does.
    """
    if num_products is not None and num_products < 1:
        raise EnvError(f"num_products must be >= 1, got {num_products}")
    if catalog in (None, "", "generated"):
        cache_key: tuple[str, int | None] = ("generated", num_products or DEFAULT_NUM_PRODUCTS)
    else:
        path = Path(str(catalog)).expanduser()
        if not path.exists():
            raise EnvError(
                f"shop catalog {catalog!r} does not exist; pass None for the generated catalog or a path to "
                "WebShop's data directory (with items_shuffle*.json)"
            )
        stat = path.stat()
        cache_key = (f"{path.resolve()}:{stat.st_mtime_ns}:{stat.st_size}", num_products)
    with _CACHE_LOCK:
        if cache_key not in _CACHE:
            if cache_key[0] == "generated":
                _CACHE[cache_key] = generate_catalog(num_products or DEFAULT_NUM_PRODUCTS, seed=CATALOG_SEED)
            else:
                _CACHE[cache_key] = load_webshop_catalog(Path(str(catalog)).expanduser(), num_products)
        return _CACHE[cache_key]
