"""Knowledge-graph embeddings of metadata (`kg`): IDKG's knowledge-graph modality (Li et al.
2023, paper 002 Sec. 3.1), trained with PyKEEN on the graph of extract/encoders/kg_graph.py.

A translation model (RotatE by default, the paper's best; TransE, TransH, ComplEx
selectable) is trained on the metadata graph, whose genre links come from TRAIN movies only;
a movie's vector is then retrieved from its non-genre entities: the SUM of the embeddings of
its directors and actors (eq. 3-4; `-o pool=mean` averages; `-o pool_fields=[...]` picks
other fields), so no dev or test label reaches a feature. A movie with none of them in the
graph is masked (the paper's F^K = 0). The encoder also stores, per movie, the Attention
Teacher's pseudo label (eq. 6, cache dataset "aux.at_label") and, per genre, the genre
entity's embedding (the G-CACL anchors' initial values, eq. 12; "label_extras.genre_embeddings").

`dim` is the number of real numbers per embedding (the paper's 200): RotatE and ComplEx
embed in C^(dim/2), stored as real and imaginary parts. Training: PyKEEN's sLCWA loop, Adam,
`num_negs` uniform negatives per positive, PyKEEN's default loss of each model. The paper
trains 500 epochs at batch 100 (SGD lr 0.5); the defaults here are 50 epochs at batch 4096
with one negative, Adam lr 0.01, so the subset's graph trains in minutes on 2 CPU cores
(bench/kg_speed.py), seeded (CPU: same seed, same embeddings).
"""
from __future__ import annotations

import io
import pickle
from collections import Counter
from typing import Any, ClassVar

import numpy as np
import torch

from extract.encoders.base import EncodeOutput, Encoder, register_encoder
from extract.encoders.kg_graph import (SCHEMAS, at_label, at_label_stats, build_triples, degrees, entity,
                                       movie_entities)

MODELS = {"rotate": "RotatE", "transe": "TransE", "transh": "TransH", "complex": "ComplEx"}
_COMPLEX = ("rotate", "complex")  # embeddings in C^(dim/2)
POOLS = ("sum", "mean")


@register_encoder
class KGEncoder(Encoder):
    name: ClassVar[str] = "kg"
    modality: ClassVar[str] = "meta"
    defaults: ClassVar[dict[str, Any]] = {
        "model": "rotate", "dim": 200, "epochs": 50, "batch_size": 4096, "lr": 0.01, "num_negs": 1, "seed": 0,
        "schema": "movie", "pool": "sum", "pool_fields": ["director", "cast"],
        "fields": ["director", "cast", "writer", "producer", "keywords", "companies", "countries", "languages"]}
    default_weights: ClassVar[str] = "fit"  # trained on the data set's own graph
    needs_fit: ClassVar[bool] = True
    aux_names: ClassVar[tuple[str, ...]] = ("at_label",)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        if self.state_dict is not None:
            raise ValueError(f"encoder {self.name!r} has no network weights; drop --state-dict")
        o = self.options
        checks = {"model": (o["model"], list(MODELS)), "schema": (o["schema"], list(SCHEMAS)),
                  "pool": (o["pool"], list(POOLS))}
        for k, (v, allowed) in checks.items():
            if v not in allowed:
                raise ValueError(f"encoder {self.name!r}: {k} must be one of {allowed}, got {v!r}")
        for k in ("dim", "epochs", "batch_size", "num_negs"):
            if not isinstance(o[k], int) or o[k] < 1:
                raise ValueError(f"encoder {self.name!r}: {k} must be an integer >= 1, got {o[k]!r}")
        if o["model"] in _COMPLEX and o["dim"] % 2:
            raise ValueError(f"encoder {self.name!r}: model {o['model']} embeds in C^(dim/2); give an even dim")
        for k in ("fields", "pool_fields"):
            o[k] = [o[k]] if isinstance(o[k], str) else list(o[k])
        if o["schema"] == "paper" and not set(o["pool_fields"]) <= {"director", "cast"}:
            raise ValueError(f"encoder {self.name!r}: schema=paper has director and cast entities only "
                             f"(eq. 1); pool_fields {o['pool_fields']} need schema=movie")
        self._state: dict[str, Any] | None = None

    @property
    def meta_fields(self) -> list[str]:
        o = self.options
        return list(dict.fromkeys(o["fields"] + o["pool_fields"]))

    # ---- fitting: the graph and its embeddings ---------------------------------------------------
    def fit_meta(self, rows: list[dict[str, list[str]]], labels: list[list[str] | None]) -> None:
        o = self.options
        if not any(y is not None for y in labels):
            raise ValueError(f"encoder {self.name!r}: no train rows to build the graph's genre links from")
        triples = build_triples(rows, labels, o["fields"], o["schema"])
        if not triples:
            raise ValueError(f"encoder {self.name!r}: the metadata fields {o['fields']} give an empty graph")
        deg = degrees(triples)
        mean_n, mean_v = at_label_stats(rows, labels, o["pool_fields"], deg)
        emb, index = self._train(triples)
        self._state = {"emb": emb, "index": index, "deg": deg, "mean_n": mean_n, "mean_v": mean_v,
                       "graph": {"entities": len(index), "relations": len({r for _, r, _ in triples}),
                                 "triples": len(triples)}}
        g = self._state["graph"]
        print(f"kg graph ({o['schema']} schema): {g['entities']} entities, {g['relations']} relations, "
              f"{g['triples']} triples; {MODELS[o['model']]} dim {o['dim']}, {o['epochs']} epochs", flush=True)

    def _train(self, triples: list[tuple[str, str, str]]) -> tuple[np.ndarray, dict[str, int]]:
        """PyKEEN sLCWA training; returns the entity embeddings (real view, (N, dim)) and their index."""
        import pykeen.models
        from pykeen.training import SLCWATrainingLoop
        from pykeen.triples import TriplesFactory

        o = self.options
        torch.manual_seed(o["seed"])
        np.random.seed(o["seed"])
        tf = TriplesFactory.from_labeled_triples(np.array(triples, dtype=str))
        width = o["dim"] // 2 if o["model"] in _COMPLEX else o["dim"]
        model = getattr(pykeen.models, MODELS[o["model"]])(triples_factory=tf, embedding_dim=width,
                                                            random_seed=o["seed"])
        loop = SLCWATrainingLoop(model=model, triples_factory=tf,
                                 optimizer=torch.optim.Adam(model.parameters(), lr=o["lr"]),
                                 negative_sampler_kwargs={"num_negs_per_pos": o["num_negs"]})
        loop.train(triples_factory=tf, num_epochs=o["epochs"], batch_size=o["batch_size"], use_tqdm=True,
                   use_tqdm_batch=False)
        with torch.no_grad():
            e = model.entity_representations[0](indices=None).detach()
        e = torch.view_as_real(e).flatten(1) if e.is_complex() else e.reshape(len(e), -1)
        return e.float().cpu().numpy(), dict(tf.entity_to_id)

    # ---- encoding -----------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self._state is not None

    @property
    def dim(self) -> int:
        return self.options["dim"]

    def load(self, device: torch.device) -> None:
        if not self.fitted:
            raise ValueError(f"encoder {self.name!r}: fit on the data set's graph (or load_extra_state) before load()")

    def collate(self, items: list[dict[str, list[str]]]) -> list[dict[str, list[str]]]:
        return list(items)

    def encode(self, batch: list[dict[str, list[str]]], tokens: bool = False) -> EncodeOutput:
        if tokens:
            raise ValueError("kg has no token-level output")
        s, o = self._state, self.options
        feats = np.zeros((len(batch), self.dim), dtype=np.float32)
        at = np.zeros(len(batch), dtype=np.float32)
        for b, row in enumerate(batch):
            ents = movie_entities(row, o["pool_fields"], s["index"])
            if ents:
                vec = s["emb"][[s["index"][e] for e in ents]]
                feats[b] = vec.sum(0) if o["pool"] == "sum" else vec.mean(0)
                at[b] = at_label(row, o["pool_fields"], s["deg"], s["mean_n"], s["mean_v"])
        return EncodeOutput(features=torch.from_numpy(feats), aux={"at_label": torch.from_numpy(at)})

    def label_extras(self, label_names: list[str]) -> dict[str, np.ndarray]:
        s = self._state
        out = np.full((len(label_names), self.dim), np.nan, dtype=np.float32)
        for c, g in enumerate(label_names):
            k = s["index"].get(entity("genre", g))
            if k is not None:
                out[c] = s["emb"][k]
        return {"genre_embeddings": out}

    def extra_state(self) -> bytes | None:
        if not self.fitted:
            return None
        buf = io.BytesIO()
        pickle.dump({**self._state, "deg": dict(self._state["deg"])}, buf)
        return buf.getvalue()

    def load_extra_state(self, data: bytes) -> None:
        """Restore the graph state saved by `extra_state()` (only from caches you made: a pickle)."""
        state = pickle.loads(data)
        self._state = {**state, "deg": Counter(state["deg"])}

    def preprocess_info(self) -> dict[str, Any]:
        import importlib.metadata

        return {"graph": "movie metadata knowledge graph, genre links from train rows only",
                "embedding": f"PyKEEN {importlib.metadata.version('pykeen')} sLCWA, Adam",
                "movie_vector": "pool of its pool_fields entities (paper 002 eq. 3-4)"}
