"""Several processes: rank and world, and the sharding, gathering and broadcasting the per-task steps use
(each a no-op in a single process)."""

from __future__ import annotations

import torch


def distributed_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def broadcast_from_main(*tensors: torch.Tensor) -> None:
    """Make rank 0's copy of tensors every rank computed deterministically bit-identical everywhere
    (in place; same shapes on every rank by construction)."""
    if distributed_world()[1] > 1:
        for tensor in tensors:
            torch.distributed.broadcast(tensor, src=0)


def shard_bounds(count: int, rank: int, world: int) -> tuple[int, int]:
    """This rank's contiguous share [lo, hi) of ``count`` items (sizes differ by at most one)."""
    return count * rank // world, count * (rank + 1) // world


def gather_shards(local: torch.Tensor, count: int) -> torch.Tensor:
    """Every rank's ``shard_bounds`` rows of a (count, ...) tensor, concatenated in rank order on every rank
    (padded to equal sizes for all_gather, then trimmed); the local tensor itself outside torch.distributed."""
    rank, world = distributed_world()
    if world == 1:
        return local
    sizes = [shard_bounds(count, r, world) for r in range(world)]
    most = max(max(hi - lo for lo, hi in sizes), 1)
    padded = local.new_zeros((most, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    torch.distributed.all_gather(parts, padded.contiguous())
    return torch.cat([part[: hi - lo] for part, (lo, hi) in zip(parts, sizes)])
