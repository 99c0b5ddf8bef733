"""IDKG (Li et al. 2023, "Incorporating Domain Knowledge Graph into Multimodal Movie Genre
Classification", paper 002 Sec. 3.2-3.3): attention fusion over N modalities with the
Attention Teacher and G-CACL.

Each modality m: h(x) = project(batchnorm(x)) to D_p (eq. 5; `d_model`, the paper's 512); ONE
attention module shared by all modalities, Linear + sigmoid, gives A^m (a D_p vector,
`-o attention=vector`, the paper's; `scalar` for one weight); F^fu = sum_m h(F^m) * A^m (eq. 5);
a Linear classifier on F^fu (the paper gives no more detail). A missing row is fed as zeros, as
eq. 4 does for a movie without knowledge-graph entities: like the paper, the zero row still goes
through the batchnorm and projection, so h(0) is not 0 (`-o missing=mask` instead sets its
attention to 0, so it adds nothing to F^fu).

Training adds (training_loss, eq. 15) to the classification loss:
- the Attention Teacher, eq. 6-7: the KG modality's attention (a vector A^K is averaged to a
  scalar, as the paper says) is pulled to the pseudo label Y~ the kg cache stores per movie
  (feats["<kg>.at_label"], extract/encoders/kg.py); a row whose KG input is absent (F^K = 0, also
  under --modality-dropout) gets Y~ = 0, eq. 6's value for a movie without entities;
  `at_weight` (1; 0 = off);
- G-CACL, eq. 8-13: genre anchors E^g (C, D_k) initialised from the KG's genre-entity
  embeddings (`use_label_extras`; genres without one start random from the run's seed, and it
  says so); `-o anchors=random` starts them all random (Table 5's "Ours (random)", or runs
  without a kg cache); trainable (`train_anchors`, default true: the paper initialises the
  anchors' space from the KG and trains on); a Linear to D_p (eq. 12); each row's centroid of its
  genres (eq. 9) is its positive, the batch's genres it lacks its negatives (eq. 10-11),
  temperature `tau` (the paper's best, 0.1); rows without a genre are skipped;
  `contrast_weight` (1; 0 = off).
`reduction`: "mean" (default) makes every term a mean over the batch rows, L_class reduced as the
run's --loss does (mean over rows and genres by default); with `--loss-opt reduction=sum_classes`
that is eq. 15 divided by B, which AdamW's updates do not see (the `idkg` preset's form). "sum"
is eq. 15 as printed: batch sums of eqs. 7, 13 and 14 (L_class rescaled from the loss's mean to a
sum). Mean is the default so the loss keeps the scale of every other head's loss whatever the
batch size (with sums, the gradient and grad clipping scale with B). The KG modality is
`-o kg=NAME` (default "kg"). explain(): {"attention": (B, M) mean attention per modality}.
"""
from __future__ import annotations

import torch
from torch import nn

from train_heads.fusion.base import FusionHead, register_fusion
from train_heads.idkg_losses import attention_teacher_loss, centroids, gcacl_loss

_CHOICES = {"attention": ("vector", "scalar"), "anchors": ("kg", "random"), "missing": ("zero", "mask"),
            "reduction": ("mean", "sum")}


@register_fusion
class IDKGHead(FusionHead):
    name = "idkg"

    def __init__(self, dims: dict[str, int], num_classes: int, token_dims: dict[str, int] | None = None,
                 d_model: int = 512, attention: str = "vector", kg: str = "kg", at_weight: float = 1.0,
                 contrast_weight: float = 1.0, tau: float = 0.1, anchors: str = "kg", train_anchors: bool = True,
                 missing: str = "zero", reduction: str = "mean", dropout: float = 0.0) -> None:
        super().__init__(dims, num_classes, token_dims)
        for opt, v in (("attention", attention), ("anchors", anchors), ("missing", missing), ("reduction", reduction)):
            if v not in _CHOICES[opt]:
                raise ValueError(f"idkg: {opt}={v!r}; choose from {list(_CHOICES[opt])}")
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
            # E^g (C, D_k), eq. 8; random rows drawn under the run's seed (train.build_head)
            self.genre_emb = nn.Parameter(torch.randn(num_classes, dims[kg]) * 0.1, requires_grad=train_anchors)
            self.anchor_proj = nn.Linear(dims[kg], d_model)  # eq. 12
        self.anchors_from_kg = False
        self._last: dict[str, torch.Tensor] = {}

    def use_label_extras(self, extras: dict[str, dict[str, "object"]]) -> None:
        """Initialise the G-CACL anchors from the kg cache's genre-entity embeddings (C, D_k),
        NaN rows for genres the graph lacks (those keep their random start)."""
        emb = extras.get(self.kg, {}).get("genre_embeddings")
        if not self.contrast_weight or emb is None:
            return
        if self.anchor_source == "random":
            print("idkg: anchors=random: the G-CACL genre anchors start random; the kg cache's genre "
                  "embeddings are not used", flush=True)
            return
        t = torch.as_tensor(emb, dtype=torch.float32)
        if t.shape != self.genre_emb.shape:
            raise ValueError(f"idkg: genre embeddings {tuple(t.shape)} do not fit the anchors "
                             f"{tuple(self.genre_emb.shape)} (genres x the {self.kg!r} cache's dimension)")
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
            present = feats[f"{m}.present"][:, None]  # (B, 1)
            x = torch.where(present, feats[m], torch.zeros_like(feats[m]))  # a missing row is zeros (eq. 4)
            h = self.proj[m](x)  # (B, D_p)
            a = torch.sigmoid(self.att(h))  # (B, D_p) or (B, 1)
            if self.missing == "mask":
                a = a * present.to(a.dtype)
            hs.append(h * a)
            atts.append(a.mean(1))  # (B,): the scalar the AT loss and the report read
        fused = torch.stack(hs, 0).sum(0)  # (B, D_p), eq. 5
        self._last = {"fused": fused, "attention": torch.stack(atts, 1)}  # attention (B, M)
        if self.kg in self.modalities and f"{self.kg}.at_label" in feats:
            # F^K = 0 where the KG input is absent: eq. 6 gives such a movie Y~ = 0
            self._last["at_label"] = feats[f"{self.kg}.at_label"] * feats[f"{self.kg}.present"].to(fused.dtype)
        return self.clf(self.drop(fused))

    def training_loss(self, logits: torch.Tensor, targets: torch.Tensor, loss_fn: nn.Module) -> torch.Tensor:
        loss = loss_fn(logits, targets)  # L_class, eq. 14 (the run's --loss)
        if self.reduction == "sum":  # eq. 14's double sum: from the loss's mean over rows (and genres)
            how = getattr(loss_fn, "reduction", "mean")
            if how not in ("mean", "sum_classes"):
                raise ValueError(f"idkg: reduction=sum needs a loss reduced by mean or sum_classes, got {how!r}")
            loss = loss * logits.shape[0] * (logits.shape[1] if how == "mean" else 1)
        if self.at_weight:
            if "at_label" not in self._last:
                raise ValueError(f"idkg: the {self.kg!r} cache has no at_label (Attention Teacher labels, eq. 6); "
                                 "re-extract it with the kg encoder, or -o at_weight=0")
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
