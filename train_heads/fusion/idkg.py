"""IDKG (Li et al. 2023, "Incorporating Domain Knowledge Graph into Multimodal Movie Genre
Classification", paper 002 Sec. 3.2-3.3): attention fusion over N modalities with the
Attention Teacher and G-CACL.

Each modality m: h(x) = project(batchnorm(x)) to D_p (eq. 5; `d_model`, the paper's 512); ONE
attention module shared by all modalities, Linear + sigmoid, gives A^m (a D_p vector,
`-o attention=vector`, the paper's; `scalar` for one weight); F^fu = sum_m h(F^m) * A^m (eq. 5);
a Linear classifier on F^fu. A missing row is fed as zeros, as eq. 4 does for a movie without
knowledge-graph entities (`-o missing=mask` instead sets its attention to 0).

Training adds (training_loss, eq. 15) to the classification loss:
- the Attention Teacher, eq. 6-7: the KG modality's mean attention is pulled to the pseudo
  label Y~ the kg cache stores per movie (feats["<kg>.at_label"], extract/encoders/kg.py);
  `at_weight` (1; 0 = off);
- G-CACL, eq. 8-13: genre anchors E^g (C, D_k) initialised from the KG's genre-entity
  embeddings (`use_label_extras`; genres without one start random, and it says so; `-o
  anchors=random` to run without a kg cache), trainable, projected by a Linear to D_p
  (eq. 12); each row's centroid of its genres is its positive, the batch's other genres its
  negatives, temperature `tau` (the paper's best, 0.1); `contrast_weight` (1; 0 = off).
`reduction`: "mean" (default, the scale of every other head's loss) or "sum" (the paper's
eqs. 7 and 13). The KG modality is `-o kg=NAME` (default "kg").
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion.base import FusionHead, register_fusion
from train_heads.idkg_losses import attention_teacher_loss, centroids, gcacl_loss


@register_fusion
class IDKGHead(FusionHead):
    name = "idkg"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 d_model: int = 512, attention: str = "vector", kg: str = "kg", at_weight: float = 1.0,
                 contrast_weight: float = 1.0, tau: float = 0.1, anchors: str = "kg", missing: str = "zero",
                 reduction: str = "mean", dropout: float = 0.0) -> None:
        super().__init__(dims, num_classes, token_dims)
        for opt, v, allowed in (("attention", attention, ("vector", "scalar")), ("anchors", anchors, ("kg", "random")),
                                ("missing", missing, ("zero", "mask")), ("reduction", reduction, ("mean", "sum"))):
            if v not in allowed:
                raise ValueError(f"idkg: {opt}={v!r}; choose from {list(allowed)}")
        if (at_weight or contrast_weight) and kg not in dims:
            raise ValueError(f"idkg: the knowledge-graph modality {kg!r} is not among {sorted(dims)}; pass "
                             "-o kg=NAME, or -o at_weight=0 -o contrast_weight=0 for the plain attention fusion")
        if tau <= 0:
            raise ValueError(f"idkg: tau must be > 0, got {tau}")
        self.kg, self.at_weight, self.contrast_weight, self.tau = kg, at_weight, contrast_weight, tau
        self.missing, self.reduction, self.anchor_source = missing, reduction, anchors
        self.proj = nn.ModuleDict({m: nn.Sequential(nn.BatchNorm1d(d), nn.Linear(d, d_model)) for m, d in dims.items()})
        self.att = nn.Linear(d_model, d_model if attention == "vector" else 1)  # shared by every modality
        self.drop = nn.Dropout(dropout)
        self.clf = nn.Linear(d_model, num_classes)
        if contrast_weight:
            self.genre_emb = nn.Parameter(torch.randn(num_classes, dims[kg]) * 0.1)  # E^g, eq. 8
            self.anchor_proj = nn.Linear(dims[kg], d_model)  # eq. 12
        self.anchors_from_kg = False
        self._last: dict[str, torch.Tensor] = {}

    def use_label_extras(self, extras: dict[str, dict[str, "object"]]) -> None:
        """Initialise the G-CACL anchors from the kg cache's genre-entity embeddings."""
        emb = extras.get(self.kg, {}).get("genre_embeddings")
        if not self.contrast_weight or emb is None:
            return
        t = torch.as_tensor(emb, dtype=torch.float32)
        if t.shape != self.genre_emb.shape:
            raise ValueError(f"idkg: genre embeddings {tuple(t.shape)} do not fit the anchors {tuple(self.genre_emb.shape)}")
        known = ~torch.isnan(t).any(1)
        with torch.no_grad():
            self.genre_emb[known] = t[known]
        self.anchors_from_kg = True
        if not known.all():
            print(f"idkg: {int((~known).sum())} genre(s) have no entity in the knowledge graph (no train "
                  "movie): their anchors start random", flush=True)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        hs, atts = [], []
        for m in self.modalities:
            present = feats[f"{m}.present"]
            x = feats[m] * present[:, None].to(feats[m].dtype)  # a missing row is zeros (eq. 4)
            h = self.proj[m](x)  # (B, D_p)
            a = torch.sigmoid(self.att(h))  # (B, D_p) or (B, 1)
            if self.missing == "mask":
                a = a * present[:, None].to(a.dtype)
            hs.append(h * a)
            atts.append(a.mean(1))  # (B,)
        fused = torch.stack(hs, 0).sum(0)  # (B, D_p), eq. 5
        self._last = {"fused": fused, "attention": torch.stack(atts, 1)}  # attention (B, M)
        if self.kg in self.modalities and f"{self.kg}.at_label" in feats:
            self._last["at_label"] = feats[f"{self.kg}.at_label"]
        return self.clf(self.drop(fused))

    def training_loss(self, logits: torch.Tensor, targets: torch.Tensor, loss_fn: nn.Module) -> torch.Tensor:
        loss = loss_fn(logits, targets)  # L_class, eq. 14 (the run's --loss)
        if self.at_weight:
            if "at_label" not in self._last:
                raise ValueError(f"idkg: the {self.kg!r} cache has no at_label (Attention Teacher labels, eq. 6); "
                                 "give a cache made by the kg encoder, or -o at_weight=0")
            a_kg = self._last["attention"][:, self.modalities.index(self.kg)]
            loss = loss + self.at_weight * attention_teacher_loss(a_kg, self._last["at_label"], self.reduction)
        if self.contrast_weight:
            if not self.anchors_from_kg and self.anchor_source == "kg":
                raise ValueError(f"idkg: G-CACL anchors start from the kg cache's genre embeddings, and the "
                                 f"{self.kg!r} cache has none; give a kg cache, or -o anchors=random, or "
                                 "-o contrast_weight=0")
            genre = self.anchor_proj(self.genre_emb)  # (C, D_p), eq. 12
            cent = self.anchor_proj(centroids(targets, self.genre_emb))  # (B, D_p), eq. 9 + 12
            loss = loss + self.contrast_weight * gcacl_loss(self._last["fused"], targets, genre, cent,
                                                            self.tau, self.reduction)
        return loss

    def explain(self) -> dict[str, torch.Tensor]:
        return {"attention": self._last["attention"].detach()} if self._last else {}
