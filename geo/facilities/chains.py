"""The chain rule and the chain share, written once: whether a shop is a chain (a brand or
a national banner of ``[chains]`` in the categories file, :func:`_chain_flags`) and the
share of a commune's named shops that are chains (:func:`chain_share`), used by the
national counts and the town portrait.
"""

from __future__ import annotations

import pandas as pd

from geo._categories import Categories


def _chain_flags(
    cats: Categories, categories: pd.Series, *texts: pd.Series, brand: pd.Series | None = None
) -> tuple[pd.Series, pd.Series]:
    """(chain, brand) for rows of a table: banner matched on the texts; NA outside commerces
    or when no text is given."""
    n = len(categories)
    chain = pd.array([None] * n, dtype="boolean")
    brands = pd.array([None] * n, dtype="str") if brand is None else brand.array.copy()
    cat = categories.to_numpy()
    cols = [t.to_numpy(dtype=object, na_value=None) for t in texts]
    bcol = None if brand is None else brand.to_numpy(dtype=object, na_value=None)
    for i in range(n):
        if cat[i] != "commerces":
            continue
        vals = [c[i] for c in cols if c[i]]
        given_brand = bcol[i] if bcol is not None else None
        if given_brand:
            chain[i] = True
            continue
        if not vals:
            continue
        banner = cats.match_banner(*vals)
        chain[i] = banner is not None
        if banner is not None:
            brands[i] = banner
    return pd.Series(chain, index=categories.index), pd.Series(brands, index=categories.index)


def chain_share(facilities: pd.DataFrame) -> pd.Series:
    """Share of the shops (category ``commerces``) whose ``chain`` is known that are chains,
    per commune (index ``insee``, float 0..1); communes without such a shop are absent.

    The one rule of ``commerces_chain_share``: the national counts apply it to the
    geolocated BPE, the portrait to a town run's facility points.
    """
    shops = facilities[facilities["category"] == "commerces"]
    known = shops[shops["chain"].notna()]
    return known["chain"].astype(bool).groupby(known["insee"]).mean()
