"""Several processes: rank and world, and the sharding, gathering and broadcasting the per-task steps use
(each a no-op in a single process)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import RecipeError


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


@dataclass(frozen=True)
class MachinePeers:
    """This process among the ranks of its machine: they share one pixel cache, in files named by ``session``
    (one per run start, agreed by every rank: a restarted job never reads a crashed one's files)."""

    session: str
    host: str
    index: int = 0
    count: int = 1

    @property
    def share(self) -> tuple[int, int]:
        return self.index, self.count

    def cache_dir(self, output_dir) -> Path:
        """The disk stores' directory (one per machine under a shared output_dir: multi-node runs decode once
        per node)."""
        base = Path(output_dir) / "pixel-cache"
        return base if self.count == 1 else base / f"{self.host}-{self.session}"

    def shm_dir(self) -> Path | None:
        """The in-memory stores' directory when ranks share them (None for one process: its own memory)."""
        return None if self.count == 1 else Path("/dev/shm") / f"segp-hf-{self.host}-{self.session}"


def machine_peers(world_size: int = 1) -> MachinePeers:
    """This rank's :class:`MachinePeers` (a collective: every rank calls it; one process: index 0 of 1).
    ``world_size``: the processes the run was launched with (TrainingArguments.world_size)."""
    host = socket.gethostname()
    rank, world = distributed_world()
    if world != world_size:  # ranks that cannot see each other would write one another's cache files
        raise RuntimeError(f"{world_size} processes were launched but torch.distributed sees {world}")
    if world == 1:
        return MachinePeers(uuid.uuid4().hex[:12], host)
    hosts, session = [None] * world, [uuid.uuid4().hex[:12]]
    torch.distributed.all_gather_object(hosts, host)
    torch.distributed.broadcast_object_list(session, src=0)
    same = [r for r, other in enumerate(hosts) if other == host]
    return MachinePeers(session[0], host, same.index(rank), len(same))


def main_process_value(value):
    """Rank 0's ``value`` (any picklable object) on every rank: a decision all ranks must take alike."""
    if distributed_world()[1] == 1:
        return value
    holder = [value]
    torch.distributed.broadcast_object_list(holder, src=0)
    return holder[0]


def sum_across_ranks(values: list[float], device=None) -> list[float]:
    """Element-wise sum of ``values`` over every rank (float64; unchanged in a single process)."""
    if distributed_world()[1] == 1:
        return list(values)
    total = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(total)
    return total.tolist()


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


# Which parallel modes a run may use, and the global batch.
# 
# SeGP-CL's trainer calls the CLIP towers directly (raw features for the prototypes, one text forward for
# every seen class); only DDP is routed through its wrapper. Modes whose wrapper would be bypassed are refused
# with the command that works, instead of silently running on one GPU or on unsharded weights.

LAUNCH_HINT = ("accelerate launch --config_file recipes/accelerate/multi_gpu.yaml -m segp_hf train ... "
               "(DDP, one process per GPU)")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def check_parallel_mode(config) -> None:
    """Refuse DataParallel (several GPUs in one process), DeepSpeed and FSDP before any model is built."""
    if getattr(config, "deepspeed", None) or _env_flag("ACCELERATE_USE_DEEPSPEED"):
        raise RecipeError(f"DeepSpeed is not supported (its wrapper would be bypassed); use DDP: {LAUNCH_HINT}")
    if getattr(config, "fsdp", None) or _env_flag("ACCELERATE_USE_FSDP"):
        raise RecipeError(f"FSDP is not supported (its wrapper would be bypassed); use DDP: {LAUNCH_HINT}")
    if getattr(config, "variant", None) == "rapf" and config.world_size > 1:
        raise RecipeError(
            f"rapf trains its adapter W outside the model, so {config.world_size} processes would not average its "
            "gradient; run rapf as one process (plain `segp-hf train`, one GPU)"
        )
    if config.n_gpu > 1:  # one process that sees several GPUs: the Trainer would wrap it in DataParallel
        raise RecipeError(
            f"{config.n_gpu} GPUs are visible to one process, which would run DataParallel and leave all but one "
            f"idle; launch one process per GPU: {LAUNCH_HINT}, or set CUDA_VISIBLE_DEVICES=0 for one GPU"
        )


def check_trainer_parallelism(trainer) -> None:
    """The same refusal as :func:`check_parallel_mode`, on what the Trainer's accelerator really set up
    (an accelerate config file can turn DeepSpeed or FSDP on without any TrainingArguments field)."""
    if getattr(trainer, "is_deepspeed_enabled", False):
        raise RecipeError(f"DeepSpeed is not supported (its wrapper would be bypassed); use DDP: {LAUNCH_HINT}")
    if getattr(trainer, "is_fsdp_enabled", False):
        raise RecipeError(f"FSDP is not supported (its wrapper would be bypassed); use DDP: {LAUNCH_HINT}")
    check_parallel_mode(trainer.args)


def global_batch_problem(global_batch: int, world_size: int, accumulation: int) -> str | None:
    """Why ``global_batch`` cannot be split over the processes and accumulation steps (None when it can);
    the one check behind :func:`per_device_batch` and the validation rule table."""
    if global_batch % (world_size * accumulation):
        return (f"global_train_batch_size={global_batch} does not divide into {world_size} process(es) x "
                f"gradient_accumulation_steps={accumulation}")
    return None


def per_device_batch(global_batch: int, world_size: int, accumulation: int) -> int:
    """The per-device batch that makes ``global_batch`` images per optimizer step."""
    if global_batch < 1:
        raise RecipeError(f"global_train_batch_size must be >= 1, got {global_batch}")
    problem = global_batch_problem(global_batch, world_size, accumulation)
    if problem:
        raise RecipeError(f"{problem}; choose a multiple of {world_size * accumulation}")
    return global_batch // (world_size * accumulation)


def apply_global_batch(config) -> None:
    """Set ``per_device_train_batch_size`` from ``global_train_batch_size`` (when given), the world size and
    the accumulation steps, so a recipe keeps the paper's batch on any number of GPUs."""
    if config.global_train_batch_size is None:
        return
    config.per_device_train_batch_size = per_device_batch(
        config.global_train_batch_size, config.world_size, config.gradient_accumulation_steps
    )
