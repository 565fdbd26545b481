"""The competitors' published settings per benchmark, as data (docs/variants.md, "Proposed recipe defaults";
each value's source file in the authors' repositories is named there).

``config.parse_config`` applies them when the variant is ``rapf`` or ``mg-clip``, except for keys given
explicitly: on the command line, or in a recipe written for that variant (its ``variant`` key is that
variant). A benchmark recipe written for SeGP-CL (``recipes/cifar100_10tasks.yaml``) therefore runs each
competitor with its own optimiser, epochs and batch under ``segp-hf ablate --variants ...``.
"""

from __future__ import annotations

# RAPF (linlany/RAPF: main.py, configs/class/*.yaml): frozen CLIP, Adam on W only, 15 epochs, milestones [4, 10].
_RAPF_COMMON = {
    "optim": "adamw_torch", "optim_args": "", "weight_decay": 0.0, "learning_rate": 1e-3, "num_train_epochs": 15,
    "epoch_lr_schedule": "multistep", "lr_milestones": [4, 10], "lr_gamma": 0.1, "rapf_margin": 0.1,
    "max_grad_norm": 0.0, "warmup_steps": 0,
}
_RAPF = {  # batch, beta, k, b, theta, shrinkage
    "cifar100": (100, 2.0, 2, 0.6, 0.55, False),
    "imagenet_sub": (128, 1.0, 2, 0.5, 0.65, False),
    "imagenet_r": (64, 1.0, 5, 0.7, 0.65, True),
    "cub200": (32, 1.0, 10, 0.8, 0.65, True),
    "ucf101": (128, 1.0, 2, 0.5, 0.65, False),  # ours: ImageNet-100's
    # ours: shapes' batch; theta from the toy text tower's pair distances (docs/variants.md, "Shapes")
    "shapes": (64, 1.0, 2, 0.6, 0.9, False),
}

# MG-CLIP (linlany/MindtheGap: main.py, epoch.py, loraclip/*, configs/class/*.yaml).
_MGCLIP_COMMON = {
    "optim": "adamw_torch", "optim_args": "", "weight_decay": 0.0, "epoch_lr_schedule": "cosine",
    "lr_min_ratio": 0.01, "lora_r": 8, "lora_alpha": 1.0, "lora_target_modules": ["k_proj", "v_proj"],
    "lora_dropout": 0.0, "lora_trainable": "AB", "lora_init_A": "xavier", "cls_classes": "current",
    "mgclip_agent_epochs": 3, "mgclip_agent_weight": 4.0, "mgclip_clip_weight": 1.0, "max_grad_norm": 0.0,
    "warmup_steps": 0,
}
_MGCLIP = {  # epochs ('auto': rule M3), batch, lr, agent lr, agent batch
    "cifar100": (1, 128, 1e-3, 5e-4, 64),
    "imagenet_sub": (2, 128, 5e-4, 1e-3, 128),
    "imagenet_r": (2, 64, 1e-3, 5e-4, 32),
    "cub200": ("auto", 64, 1e-3, 5e-4, 32),  # ours: ImageNet-R's
    "ucf101": ("auto", 128, 1e-3, 5e-4, 64),  # ours: CIFAR-100's
    "shapes": ("auto", 64, 1e-3, 5e-4, 64),  # ours: shapes' batch, CIFAR-100's rates
}
_FALLBACK = "imagenet_sub"  # a benchmark with no row (e.g. 'local'): the natural-image setting


def _rapf(benchmark: str) -> dict:
    batch, beta, k, mix, theta, shrink = _RAPF.get(benchmark, _RAPF[_FALLBACK])
    return {**_RAPF_COMMON, "global_train_batch_size": batch, "rapf_beta": beta, "rapf_replay_classes": k,
            "rapf_mix_bias": mix, "rapf_threshold": theta, "rapf_shrinkage": shrink}


def _mgclip(benchmark: str) -> dict:
    epochs, batch, lr, agent_lr, agent_batch = _MGCLIP.get(benchmark, _MGCLIP[_FALLBACK])
    fixed = {"mgclip_epochs": "fixed", "num_train_epochs": epochs} if epochs != "auto" else {"mgclip_epochs": "auto"}
    return {**_MGCLIP_COMMON, **fixed, "global_train_batch_size": batch, "learning_rate": lr,
            "mgclip_agent_lr": agent_lr, "mgclip_agent_batch_size": agent_batch}


_BUILDERS = {"rapf": _rapf, "mg-clip": _mgclip}


def variant_defaults(variant: str, benchmark: str) -> dict:
    """The published settings of ``variant`` on ``benchmark`` ({} for a variant without any)."""
    build = _BUILDERS.get(variant)
    return build(benchmark) if build else {}
