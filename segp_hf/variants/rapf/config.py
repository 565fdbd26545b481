"""RAPF's own settings (``RAPFConfig``, composed into ``SeGPConfig``) and its published settings per benchmark
(docs/variants.md, "Proposed recipe defaults"; each value's source file in the authors' repository is named
there). ``recipe.parse_config`` applies the published ones when the variant is ``rapf``, except for keys given
explicitly (on the command line, or in a recipe written for ``rapf``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RAPFConfig:
    """Read only by the ``rapf`` variant (docs/variants.md, R1-R9)."""

    rapf_beta: float = field(default=2.0, metadata={
        "help": "RAPF R4: int(10 beta) replayed samples per old class per batch, int(20 beta) per hard pair."})
    rapf_replay_classes: int = field(default=2, metadata={"help": "RAPF R5: old classes replayed per batch (k)."})
    rapf_threshold: float = field(default=0.55, metadata={
        "help": "RAPF R6: (old, new) class pairs whose normalised text embeddings are closer than this get the hinge."})
    rapf_margin: float = field(default=0.1, metadata={"help": "RAPF R7: hinge margin."})
    rapf_mix_bias: float = field(default=0.6, metadata={"help": "RAPF R9: fusion bias b."})
    rapf_shrinkage: bool = field(default=False, metadata={"help": "RAPF R3: shrink the class covariances."})


# linlany/RAPF (main.py, configs/class/*.yaml): frozen CLIP, Adam on W only, 15 epochs, milestones [4, 10].
_COMMON = {
    "optim": "adamw_torch", "optim_args": "", "weight_decay": 0.0, "learning_rate": 1e-3, "num_train_epochs": 15,
    "epoch_lr_schedule": "multistep", "lr_milestones": [4, 10], "lr_gamma": 0.1, "rapf_margin": 0.1,
    "max_grad_norm": 0.0, "warmup_steps": 0,
}
_PER_BENCHMARK = {  # batch, beta, k, b, theta, shrinkage
    "cifar100": (100, 2.0, 2, 0.6, 0.55, False),
    "imagenet_sub": (128, 1.0, 2, 0.5, 0.65, False),
    "imagenet_r": (64, 1.0, 5, 0.7, 0.65, True),
    "cub200": (32, 1.0, 10, 0.8, 0.65, True),
    "ucf101": (128, 1.0, 2, 0.5, 0.65, False),  # ours: ImageNet-100's
    # ours: shapes' batch; theta from the toy text tower's pair distances (docs/variants.md, "Shapes")
    "shapes": (64, 1.0, 2, 0.6, 0.9, False),
}
_FALLBACK = "imagenet_sub"  # a benchmark with no row (e.g. 'custom'): the natural-image setting


def published_defaults(benchmark: str) -> dict:
    """RAPF's published settings on ``benchmark``."""
    batch, beta, k, mix, theta, shrink = _PER_BENCHMARK.get(benchmark, _PER_BENCHMARK[_FALLBACK])
    return {**_COMMON, "global_train_batch_size": batch, "rapf_beta": beta, "rapf_replay_classes": k,
            "rapf_mix_bias": mix, "rapf_threshold": theta, "rapf_shrinkage": shrink}
