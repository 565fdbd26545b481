"""The PEFT-LoRA student (a CLIPModel or a SiglipModel: ``families.py``) and its feature helpers.

LoRA sits in both towers; only ``lora_B`` trains (A keeps its random init, B starts at zero), so with
the adapter disabled the model is exactly the pretrained checkpoint. What differs between model families
(the features, the logit scale, which layers LoRA may target) is asked of the model's family.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from torch.utils.data import DataLoader

from ..data.pixel_cache import model_pixels
from ..data.ready_batches import ready_batches
from .families import ModelFamily, family_of_checkpoint, family_of_config

ADAPTER_NAME = "default"


def resolve_model_path(model_name_or_path: str) -> str:
    """Map the ``toy-clip`` alias to the toy CLIP shipped in the package; anything else is unchanged."""
    from .toy_clip import TOY_CLIP

    if model_name_or_path == TOY_CLIP:
        from .toy_clip import toy_clip_path

        return toy_clip_path()
    return model_name_or_path


def load_clip(model_name_or_path: str, revision: str | None = None, dtype=None):
    """The checkpoint as its family's model class (``CLIPModel``, ``SiglipModel``); another kind is refused."""
    kwargs = {"revision": revision} if revision else {}
    path = resolve_model_path(model_name_or_path)
    family = family_of_checkpoint(path, **kwargs)
    if dtype is not None:
        kwargs["dtype"] = dtype
    return family.load(path, **kwargs)


def lora_config(r: int = 32, alpha: float | None = None, target_modules=("k_proj", "v_proj", "fc1", "fc2"), dropout: float = 0.0) -> LoraConfig:
    return LoraConfig(
        r=r,
        lora_alpha=r if alpha is None else alpha,
        target_modules=list(target_modules),
        lora_dropout=dropout,
        bias="none",
        init_lora_weights=True,  # A: Kaiming-uniform, B: zeros
    )


def train_only_lora_B(model: torch.nn.Module) -> None:
    """Make lora_B the whole trainable set (lora_A and every base weight frozen). Call again after any PEFT
    adapter toggle: PEFT re-enables the whole adapter."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_B" in name)


def configure_lora(model, trainable: str = "B", init_A: str = "kaiming", seed: int = 0) -> None:
    """The run's ``lora_trainable`` ('B': SeGP-CL; 'AB': MG-CLIP, both matrices train) and ``lora_init_A``
    ('xavier': MG-CLIP's loralib re-initialises A Xavier-uniform, from a generator seeded by ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    for name, parameter in model.named_parameters():
        if "lora_A" in name:
            if init_A == "xavier":
                with torch.no_grad():
                    weight = torch.empty(parameter.shape, dtype=torch.float32)
                    parameter.copy_(torch.nn.init.xavier_uniform_(weight, generator=generator))
            parameter.requires_grad_(trainable == "AB")




@contextmanager
def peft_wrapping():
    """Around a PeftModel construction: peft (0.21, ``PeftModel.__init__``) reads transformers 5's deprecated
    ``is_gradient_checkpointing`` property, which emits a FutureWarning from inside the two libraries; we never
    enable checkpointing, so that one message, and only here, is ignored."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def build_lora_clip(
    model_name_or_path: str,
    r: int = 32,
    alpha: float | None = None,
    target_modules=("k_proj", "v_proj", "fc1", "fc2"),
    dropout: float = 0.0,
    revision: str | None = None,
    dtype=None,
    trainable: str = "B",
    init_A: str = "kaiming",
    seed: int = 0,
) -> PeftModel:
    """A CLIPModel or SiglipModel from a Hub id or local path with LoRA in both towers: B-only by default;
    ``trainable``, ``init_A`` and ``seed`` as in :func:`configure_lora`."""
    base = load_clip(model_name_or_path, revision=revision, dtype=dtype)
    return add_lora(base, r, alpha, target_modules, dropout, trainable, init_A, seed)


def add_lora(base, r: int = 32, alpha: float | None = None, target_modules=("k_proj", "v_proj", "fc1", "fc2"),
             dropout: float = 0.0, trainable: str = "B", init_A: str = "kaiming", seed: int = 0) -> PeftModel:
    """``base`` with LoRA on ``target_modules`` (checked against its own layer names by its family, which also
    decides which layers they name: families.py)."""
    targets = family_of(base).lora_targets(base, target_modules)
    with peft_wrapping():
        model = get_peft_model(base, lora_config(r, alpha, targets, dropout))
    train_only_lora_B(model)
    if (trainable, init_A) != ("B", "kaiming"):
        configure_lora(model, trainable, init_A, seed)
    return model


def lora_choices(config) -> dict:
    """:func:`build_lora_clip`'s LoRA choices from a run's settings (``lora_trainable``, ``lora_init_A``)."""
    return {"trainable": config.lora_trainable, "init_A": config.lora_init_A, "seed": config.seed}


def clip_of(model):
    """The base model (CLIPModel, SiglipModel) inside a PeftModel (LoRA layers are injected in place), DDP wrapper
    or not."""
    model = getattr(model, "module", model)
    return model.get_base_model() if isinstance(model, PeftModel) else model


def family_of(model) -> ModelFamily:
    """The model family of ``model`` (a base model, a PeftModel, a DDP wrapper), from its config's ``model_type``."""
    return family_of_config(clip_of(model).config)


def logit_scale_of(model) -> float:
    """``exp(t)``, the scale of the method's logits ``s * cos`` (SigLIP's bias is left out: families.py)."""
    clip = clip_of(model)
    return family_of_config(clip.config).logit_scale(clip)


def encode_images(model, pixel_values: torch.Tensor, raw_feature: str = "pre_projection"):
    """(normalised image embeddings F(x), raw features h(x)) with one vision forward; what ``raw_feature`` names
    is the family's (CLIP: ``pre_projection`` the pooled CLS after post-layernorm, ``projected`` the projection
    before normalising; SigLIP: both the attention-pooling head's output)."""
    clip = clip_of(model)
    embeds, raw = family_of_config(clip.config).image_features(clip, pixel_values, raw_feature)
    return F.normalize(embeds, dim=-1), raw


def device_of(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_dataset(model, dataset, collator, batch_size, raw_feature, normalizer=None):
    """Projected embeddings, raw features and labels of every image of ``dataset``, in order (``normalizer``:
    the run's PixelNormalizer, for cached uint8 batches)."""
    device = device_of(model)
    embeds, raws, labels = [], [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=ready_batches(collator))
    for batch in loader:
        embed, raw = encode_images(model, model_pixels(batch["pixel_values"], device, normalizer), raw_feature)
        embeds.append(embed)
        raws.append(raw)
        labels.append(batch["labels"].to(device))
    return torch.cat(embeds), torch.cat(raws), torch.cat(labels)


def encode_texts(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised text embeddings G(prompt)."""
    clip = clip_of(model)
    return F.normalize(family_of_config(clip.config).text_features(clip, input_ids, attention_mask), dim=-1)


@contextmanager
def float32_heads(device):
    """Autocast off: the logit matmuls, the losses' softmaxes and the dual-path scores run in float32 even
    when the towers run in bf16/fp16 (bf16 rounds logits near 64-128 to steps of 0.5, enough to flip
    close predictions). Feed it the float32 outputs of :func:`encode_images` / :func:`encode_texts`."""
    device_type = torch.device(device).type
    if device_type not in ("cpu", "cuda", "xpu", "hpu", "mps"):
        yield
        return
    with torch.autocast(device_type=device_type, enabled=False):
        yield


@contextmanager
def eval_mode(model):
    """``model.eval()`` for the block (no dropout, as the teacher and every measurement needs), then the training
    mode it had, also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def adapter_disabled(model):
    """The pretrained CLIP (LoRA off). On exit every parameter's ``requires_grad`` is as it was on entry: PEFT
    re-enables the whole adapter, which would unfreeze SeGP-CL's lora_A, and forcing B-only instead would freeze
    MG-CLIP's trainable A (``lora_trainable: AB``)."""
    peft_model = getattr(model, "module", model)
    if not isinstance(peft_model, PeftModel):
        yield model
        return
    trainable = {name: parameter.requires_grad for name, parameter in peft_model.named_parameters()}
    try:
        with peft_model.disable_adapter():
            yield model
    finally:
        for name, parameter in peft_model.named_parameters():
            parameter.requires_grad_(trainable[name])


def image_encoder(model, raw_feature: str = "pre_projection"):
    """``pixels -> (embeds, raw)`` closure, the form DPGD attacks."""
    return lambda pixel_values: encode_images(model, pixel_values, raw_feature)


def merged_copy(model) -> torch.nn.Module:
    """An adapter-free copy of ``model`` for inference: the LoRA deltas merged into the base weights.

    The merge runs on a deep copy (PEFT ``merge_and_unload``); ``model`` itself is never merged or
    unmerged, so its weights stay bit-exact (training and resume are unaffected). The copy is a plain
    ``CLIPModel`` (``SiglipModel``) in eval mode with no trainable parameter, on ``model``'s device and dtype; its
    logits equal the adapter's up to float rounding of ``W + scale * B @ A``. It costs one extra copy of the
    model's weights while it lives. A model without a PEFT adapter is returned as it is.
    """
    peft_model = getattr(model, "module", model)  # a DDP wrapper: its module
    if not isinstance(peft_model, PeftModel):
        return peft_model
    merged = copy.deepcopy(peft_model).merge_and_unload()
    merged.eval()
    for parameter in merged.parameters():
        parameter.requires_grad_(False)
    return merged
