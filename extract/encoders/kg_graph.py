"""The metadata knowledge graph of IDKG (Li et al. 2023, paper 002 Sec. 3.1-3.2): triples,
entity degrees, a movie's entities, and the Attention Teacher's pseudo labels (eq. 6).

Two schemas (`kg -o schema=...`):

- ``movie`` (default): a node per movie of every split, ``movie -has_<field>-> <field>:<name>``
  for each entity of its metadata fields (names only: no label), and ``movie -has_genre->
  genre:<name>`` for TRAIN movies only, plus the genre entities. A dev or test movie's genres
  never enter the graph, and its own directors and actors are in it, so it gets a vector.
- ``paper``: eq. 1-2 as written: entities directors (d), titles (t, one per movie), casts (c),
  genres (g) and the six relations d-t, c-t, g-t, d-c, d-g, c-g, built from TRAIN movies only
  ("we only use metadata from D_train"); a dev/test movie none of whose directors or actors
  appears in train has no vector (eq. 4: F^K = 0; masked here, as a missing poster is).

Entity names are namespaced by field ("director:Ridley Scott") so a director who also acts
is one entity per role, as the paper's entity types are.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

SCHEMAS = ("movie", "paper")
# paper 002 eq. 1-2: entity types by metadata field, and the relations among them
_PAPER_FIELDS = {"director": "d", "cast": "c"}


def entity(field: str, name: str) -> str:
    return f"{field}:{name}"


def build_triples(rows: list[dict[str, list[str]]], labels: list[list[str] | None], fields: list[str],
                  schema: str) -> list[tuple[str, str, str]]:
    """(head, relation, tail) labelled triples; genre links come from rows whose label is not None."""
    if schema not in SCHEMAS:
        raise ValueError(f"kg: schema must be one of {list(SCHEMAS)}, got {schema!r}")
    triples: list[tuple[str, str, str]] = []
    for i, (row, y) in enumerate(zip(rows, labels)):
        if schema == "movie":
            movie = f"movie:{i}"
            triples += [(movie, f"has_{f}", entity(f, e)) for f in fields for e in row.get(f, [])]
            triples += [(movie, "has_genre", entity("genre", g)) for g in (y or [])]
            continue
        if y is None:  # the paper's graph: train movies only
            continue
        title = f"title:{i}"
        people = {t: [entity(f, e) for e in row.get(f, [])] for f, t in _PAPER_FIELDS.items()}
        genres = [entity("genre", g) for g in y]
        triples += [(p, "d-t", title) for p in people["d"]] + [(p, "c-t", title) for p in people["c"]]
        triples += [(g, "g-t", title) for g in genres]
        triples += [(d, "d-c", c) for d in people["d"] for c in people["c"]]
        triples += [(d, "d-g", g) for d in people["d"] for g in genres]
        triples += [(c, "c-g", g) for c in people["c"] for g in genres]
    return sorted(set(triples))  # one edge per fact, in a fixed order


def degrees(triples: list[tuple[str, str, str]]) -> Counter:
    """V_e: the number of triples an entity takes part in."""
    deg: Counter = Counter()
    for h, _, t in triples:
        deg[h] += 1
        deg[t] += 1
    return deg


def movie_entities(row: dict[str, list[str]], pool_fields: list[str], known: set[str] | dict) -> list[str]:
    """K_i (eq. 3): the movie's entities of the pooled fields that exist in the graph."""
    return [entity(f, e) for f in pool_fields for e in row.get(f, []) if entity(f, e) in known]


def at_label_stats(rows: list[dict[str, list[str]]], labels: list[list[str] | None], pool_fields: list[str],
                   deg: Counter) -> tuple[float, float]:
    """The train means of eq. 6: mean N_{d+c} and mean sum of degrees V over the W train movies."""
    n, v = [], []
    for row, y in zip(rows, labels):
        if y is None:
            continue
        ents = movie_entities(row, pool_fields, deg)
        n.append(sum(len(row.get(f, [])) for f in pool_fields))
        v.append(sum(deg[e] for e in ents))
    return (float(np.mean(n)) if n else 0.0), (float(np.mean(v)) if v else 0.0)


def at_label(row: dict[str, list[str]], pool_fields: list[str], deg: Counter, mean_n: float,
             mean_v: float) -> float:
    """Paper 002 eq. 6: Y~_i = N_i * V_i / ((N_i + mean N) (V_i + mean V)), N_i the number of its
    directors and actors, V_i the sum of the degrees of its entities in the graph; 0 when it has none."""
    n_i = sum(len(row.get(f, [])) for f in pool_fields)
    v_i = sum(deg[e] for e in movie_entities(row, pool_fields, deg))
    if n_i == 0 or v_i == 0:
        return 0.0
    return n_i * v_i / ((n_i + mean_n) * (v_i + mean_v))
