"""Data-parallel search and retraining with torch.distributed (gloo on CPU, nccl on GPU).

Weight steps run through ``DistributedDataParallel`` (theta excluded from its buckets); architecture steps
run the plain module and all-reduce (average) the theta gradients by hand, so every rank applies the same
Adam step and ends with identical theta and config. Loaders are re-made with a ``DistributedSampler``.
Under ``torchrun`` call :func:`init_from_env` first (it reads WORLD_SIZE/RANK/MASTER_ADDR).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

__all__ = [
    "init_from_env",
    "is_distributed",
    "rank",
    "world_size",
    "shard_loader",
    "wrap_ddp",
    "all_reduce_mean_",
    "broadcast_bn_stats_",
    "barrier",
]


def init_from_env() -> bool:
    """Initialise the default process group when launched with WORLD_SIZE > 1; True when distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def shard_loader(loader: DataLoader, *, seed: int) -> DataLoader:
    """The same data split across ranks by a DistributedSampler (shuffled iff ``loader`` shuffles)."""
    shuffle = isinstance(loader.sampler, RandomSampler)
    sampler = DistributedSampler(loader.dataset, shuffle=shuffle, seed=seed)  # type: ignore[var-annotated]
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        drop_last=loader.drop_last,
    )


def set_epoch(loaders: Sequence[Any], epoch: int) -> None:
    for loader in loaders:
        sampler = getattr(loader, "sampler", None)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)


def wrap_ddp(module: nn.Module, *, ignore: Sequence[str] = (), find_unused: bool = False) -> nn.Module:
    """DistributedDataParallel around ``module`` when distributed (parameters named in ``ignore`` are left to
    the caller); the module itself otherwise."""
    if not is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel

    if ignore:
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, list(ignore))
    device_ids = [torch.cuda.current_device()] if next(module.parameters()).is_cuda else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=find_unused)


def all_reduce_mean_(tensors: Sequence[torch.Tensor]) -> None:
    """Average tensors across ranks in place (no-op when not distributed)."""
    if not is_distributed():
        return
    n = dist.get_world_size()
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(n)


def broadcast_bn_stats_(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s BatchNorm running statistics to every rank (no-op when not distributed).

    DDP broadcasts buffers only at the start of each forward, so after the last training step every rank
    holds its own batch's update; call this before evaluating or saving a model trained under DDP.
    """
    if not is_distributed():
        return
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for b in m.buffers():
                dist.broadcast(b, src)


def barrier() -> None:
    if is_distributed():
        dist.barrier()
