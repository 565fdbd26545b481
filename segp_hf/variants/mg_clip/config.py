"""MG-CLIP's own settings (``MGCLIPConfig``, composed into ``SeGPConfig``) and its published settings per
benchmark (docs/variants.md, "Proposed recipe defaults"; each value's source file in the authors' repository is
named there). ``recipe.parse_config`` applies the published ones when the variant is ``mg-clip``, except for
keys given explicitly (on the command line, or in a recipe written for ``mg-clip``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MGCLIPConfig:
    """Read only by the ``mg-clip`` variant (docs/variants.md, M1-M7)."""

    mgclip_epochs: str = field(default="fixed", metadata={
        "help": "MG-CLIP: 'fixed' (num_train_epochs) or 'auto' (the authors' rule M3, probed on the first task)."})
    mgclip_gap_tolerance: float = field(default=0.1, metadata={"help": "MG-CLIP M3: relative change of the gap allowed."})
    mgclip_probe_epochs: int = field(default=10, metadata={"help": "MG-CLIP M3: length of the probe (and its cosine)."})
    mgclip_agent_lr: float = field(default=5e-4, metadata={"help": "MG-CLIP M6: visual agent's learning rate."})
    mgclip_agent_batch_size: int = field(default=64, metadata={"help": "MG-CLIP M6: visual agent's batch."})
    mgclip_agent_epochs: int = field(default=3, metadata={"help": "MG-CLIP M6: visual agent's epochs per task."})
    mgclip_agent_weight: float = field(default=4.0, metadata={"help": "MG-CLIP M7: weight of the agent's softmax."})
    mgclip_clip_weight: float = field(default=1.0, metadata={"help": "MG-CLIP M7: weight of CLIP's softmax."})
    mgclip_clip_softmax: str = field(default="twice", metadata={
        "help": "MG-CLIP M7: CLIP's term in the mixture: 'twice' (the authors' code: softmax of CLIP's softmax, "
        "nearly flat, so the agent overrules CLIP where its preference is clear) or 'once' (the paper's formula: "
        "softmax of CLIP's logits)."})


# linlany/MindtheGap (main.py, epoch.py, loraclip/*, configs/class/*.yaml).
_COMMON = {
    "optim": "adamw_torch", "optim_args": "", "weight_decay": 0.0, "epoch_lr_schedule": "cosine",
    "lr_min_ratio": 0.01, "lora_r": 8, "lora_alpha": 1.0, "lora_target_modules": ["k_proj", "v_proj"],
    "lora_dropout": 0.0, "lora_trainable": "AB", "lora_init_A": "xavier", "cls_classes": "current",
    "mgclip_agent_epochs": 3, "mgclip_agent_weight": 4.0, "mgclip_clip_weight": 1.0, "max_grad_norm": 0.0,
    "warmup_steps": 0,
    "mgclip_clip_softmax": "twice",  # M7: models.py's test-mode forward returns softmax(z); main.py softmaxes it again
}
_PER_BENCHMARK = {  # epochs ('auto': rule M3), batch, lr, agent lr, agent batch
    "cifar100": (1, 128, 1e-3, 5e-4, 64),
    "imagenet_sub": (2, 128, 5e-4, 1e-3, 128),
    "imagenet_r": (2, 64, 1e-3, 5e-4, 32),
    "cub200": ("auto", 64, 1e-3, 5e-4, 32),  # ours: ImageNet-R's
    "ucf101": ("auto", 128, 1e-3, 5e-4, 64),  # ours: CIFAR-100's
    "shapes": ("auto", 64, 1e-3, 5e-4, 64),  # ours: shapes' batch, CIFAR-100's rates
}
_FALLBACK = "imagenet_sub"
# What MG-CLIP runs saved before a setting existed used, where that differs from its default today (read by
# recipe.default_settings, for resuming such a run and for scoring its loaded tasks).
SAVED_BEFORE = {"mgclip_clip_softmax": "once"}  # issue 28: until then M7 took a single softmax of CLIP's logits  # a benchmark with no row (e.g. 'custom'): the natural-image setting


def published_defaults(benchmark: str) -> dict:
    """MG-CLIP's published settings on ``benchmark``."""
    epochs, batch, lr, agent_lr, agent_batch = _PER_BENCHMARK.get(benchmark, _PER_BENCHMARK[_FALLBACK])
    fixed = {"mgclip_epochs": "fixed", "num_train_epochs": epochs} if epochs != "auto" else {"mgclip_epochs": "auto"}
    return {**_COMMON, **fixed, "global_train_batch_size": batch, "learning_rate": lr,
            "mgclip_agent_lr": agent_lr, "mgclip_agent_batch_size": agent_batch}
