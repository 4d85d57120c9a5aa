"""Targets sharded across processes: tensor parallelism with torch.distributed (``torchrun``).

Under ``torchrun --nproc_per_node N`` every process runs the same decoding loop. ``load_pair``
loads a hub target with transformers' tensor-parallel plan (each process holds 1/N of every
layer; NCCL between GPUs, gloo between CPUs) and the draft whole on every process. The sharded
layers all-reduce their outputs, so every process sees the same logits, commits the same tokens
and grows the same trees; nothing in the loop knows. Rank 0 alone prints and writes files.
"""

from __future__ import annotations

import os

import torch


def world() -> tuple[int, int]:
    """(rank, world size) of this process: from torchrun's environment, (0, 1) otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_writer() -> bool:
    """Only rank 0 prints and writes results (every process computes the same ones)."""
    return world()[0] == 0


def sharding_kwargs() -> dict:
    """``from_pretrained`` arguments for transformers' automatic tensor-parallel plan."""
    import transformers

    if hasattr(transformers, "DistributedConfig"):   # transformers >= 5.18
        return {"distributed_config": transformers.DistributedConfig(tp_plan="auto")}
    return {"tp_plan": "auto"}


def is_sharded(model: torch.nn.Module) -> bool:
    """True when some parameter of ``model`` is a distributed tensor (a sharded layer)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())
