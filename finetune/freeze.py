"""How much of each backbone trains: block plans, gradual unfreezing, discriminative lrs.

A backbone is stem -> blocks[0..n-1] -> tail (extract/encoders/trunk.py). `--unfreeze last:N`
trains the top N blocks and the tail; `all` also the stem; `none` nothing. Parameters of
the frozen part get requires_grad=False and their modules stay in eval mode in training
(`JointModel.train`), so BatchNorm running statistics and dropout there are those of the
pretrained network: frozen parameters and buffers stay bit-identical.

Gradual unfreezing (ULMFiT, Howard & Ruder 2018, arXiv:1801.06146, Sec. 3.2): with
`--unfreeze-every K` training starts with the top unit (tail + last block) and adds the next
block down every K epochs until the `--unfreeze` extent is reached (the stem last, for all).

Discriminative learning rates (ULMFiT Sec. 3.2, eta^{l-1} = eta^l / 2.6 there): the top block
and the tail train at `--backbone-lr`, each block below at `layer_decay` times the one above,
the stem at layer_decay^n; the head at the head's `--lr`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from extract.encoders import Encoder
from extract.encoders.trunk import Trunk, parse_blocks


@dataclass
class BlockPlan:
    """One backbone's training extent: its top `top` blocks (with the tail) and, with
    `stem_trains`, its stem. k = the first block run with gradients (0 when the stem trains,
    since its gradient flows through every block; n when nothing trains)."""

    name: str  # feature name (image, text...)
    enc: Encoder
    trunk: Trunk
    top: int  # blocks that train, counted from the last
    stem_trains: bool  # --unfreeze all, or last:N+stem
    mode: str = "raw"  # raw | prefix | features (finetune/data.py: where its input comes from)

    @property
    def n(self) -> int:
        return self.trunk.n_blocks

    @property
    def k(self) -> int:
        if self.stem_trains:
            return 0
        return self.n - self.top

    @property
    def units(self) -> list[list[nn.Module]]:
        """Trainable units from the top: [tail + last block], [block n-2], ..., then [stem]."""
        t = self.trunk
        out = [[*t.tail, t.blocks[self.n - 1]]] if self.top else []
        out += [[t.blocks[i]] for i in range(self.n - 2, self.n - 1 - self.top, -1)]
        if self.stem_trains:
            out.append(list(t.stem))
        return out

    @property
    def trains(self) -> bool:
        return bool(self.units)


def make_plan(name: str, enc: Encoder, trunk: Trunk, unfreeze: str) -> BlockPlan:
    """The plan for `--unfreeze none|last:N|all`, or `last:N+stem` (paper 000's BERT: the last
    2 layers, the pooler and the embeddings); a from-scratch encoder trains whole."""
    flag = f"--{name}-unfreeze" if name in ("image", "text") else f"--unfreeze ({name})"
    if enc.from_scratch and unfreeze != "all":
        raise ValueError(f"{flag} {unfreeze!r}: encoder {enc.name!r} is trained from scratch, it has no "
                         "pretrained part to keep frozen; use all (its default)")
    spec, plus_stem = (unfreeze[:-5], True) if unfreeze.endswith("+stem") else (unfreeze, False)
    if plus_stem and spec == "all":
        raise ValueError(f"{flag} {unfreeze!r}: all already trains the stem; write all")
    k = parse_blocks(spec, trunk.n_blocks, flag)
    return BlockPlan(name, enc, trunk, trunk.n_blocks - k, spec == "all" or plus_stem)


def units_at(plan: BlockPlan, epoch: int, every: int) -> int:
    """How many units train at `epoch` (0-based) under gradual unfreezing every `every` epochs."""
    total = len(plan.units)
    return total if every <= 0 else min(total, 1 + epoch // every)


def set_trainable(plan: BlockPlan, n_units: int) -> None:
    """requires_grad on the top n_units units of the plan, off everywhere else in the trunk."""
    for p in plan.trunk.parameters():
        p.requires_grad_(False)
    for unit in plan.units[:n_units]:
        for mod in unit:
            for p in mod.parameters():
                p.requires_grad_(True)


def frozen_modules(plan: BlockPlan, n_units: int) -> list[nn.Module]:
    """Modules of the trunk that do not train now (kept in eval mode while training)."""
    live = {id(m) for unit in plan.units[:n_units] for m in unit}
    t = plan.trunk
    return [m for m in (*t.stem, *t.blocks, *t.tail) if id(m) not in live]


def param_groups(head: nn.Module, plans: list[BlockPlan], head_lr: float, backbone_lr: float,
                 layer_decay: float) -> list[dict[str, Any]]:
    """Optimiser groups: the head at head_lr, each backbone unit at backbone_lr x decay^depth.
    Every parameter that will ever train is in a group from the start (gradual unfreezing
    only switches requires_grad), so optimiser state and checkpoints keep one shape."""
    groups = [{"name": "head", "params": list(head.parameters()), "lr": head_lr}]
    for plan in plans:
        for depth, unit in enumerate(plan.units):
            params = [p for mod in unit for p in mod.parameters()]
            if params:
                is_stem = plan.stem_trains and depth == len(plan.units) - 1
                label = "stem" if is_stem else f"block{plan.n - 1 - depth}"
                decay = layer_decay ** (plan.n if is_stem else depth)  # the stem sits below block 0
                groups.append({"name": f"{plan.name}.{label}", "params": params, "lr": backbone_lr * decay})
    return groups


def trainable_names(model: nn.Module, plans: list[BlockPlan], head: nn.Module) -> list[str]:
    """state_dict keys of everything that can change in training (head, trainable units with
    their buffers such as BatchNorm statistics): what checkpoints and the best state keep."""
    ids = {id(head)} | {id(m) for p in plans for unit in p.units for m in unit}
    keep: list[str] = []
    for mod_name, mod in model.named_modules():
        if id(mod) in ids:
            sub = mod.state_dict(prefix=f"{mod_name}." if mod_name else "")
            keep.extend(sub)
    return sorted(set(keep))


def count_params(mods: list[nn.Module]) -> int:
    return sum(p.numel() for m in mods for p in m.parameters())


def describe(plan: BlockPlan) -> str:
    """One line per backbone for the run's log: what trains and from where its input comes."""
    trains = count_params([m for u in plan.units for m in u])
    total = sum(p.numel() for p in plan.trunk.parameters())
    blocks = f"blocks {plan.n - plan.top}..{plan.n - 1} of {plan.n} + tail" if plan.top else "no block"
    extent = "nothing" if not plan.trains else "everything" if plan.top == plan.n and plan.stem_trains else (
        blocks + (" + stem" if plan.stem_trains else ""))
    return (f"{plan.name}: {plan.enc.name} trains {extent} ({trains / 1e6:.2f}M of {total / 1e6:.2f}M "
            f"parameters); input: {plan.mode}")
