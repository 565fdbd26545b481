"""The model families a run can use, one small adapter each: everything the method needs of a vision-language
checkpoint (load it, its two embeddings and the raw visual feature ``h``, its logit scale, its tokenisation, its
image processor, which layers get LoRA) is asked of the family, chosen from the checkpoint's ``model_type``.

- ``clip``: ``CLIPModel`` (OpenAI CLIP of any size, LAION / MetaCLIP checkpoints saved as ``CLIPModel``).
- ``siglip``: ``SiglipModel`` (SigLIP, and SigLIP 2 at a fixed resolution, whose checkpoints are saved as
  ``SiglipModel`` with ``model_type: siglip``).

What the method's pieces mean on SigLIP (docs/usage.md, "Other backbones", says the same):

- Logits: SigLIP scores ``exp(t) * cos + b``. The method's logits are ``exp(t) * cos`` (the bias left out):
  ``b`` is one number added to every logit of a row, so no softmax (CE, ACGD, TSGR, DPGD, LwF) and no argmax or
  margin the method computes changes with it; only SigLIP's own sigmoid probabilities would, and the method
  never uses them. ``logit_bias`` reports it for a user who wants ``sigmoid(exp(t) * cos + b)``.
- The raw feature ``h``: SigLIP's vision tower has no projection; its embedding is the output of the
  attention-pooling (MAP) head, which is the ``pooler_output``. Its projection is the identity, so
  ``raw_feature: pre_projection`` (the pooled feature a projection would take) and ``projected`` (the embedding
  before normalising) name the same vector, the MAP head's output; ``F(x)`` is that vector normalised.
- LoRA: the targets name layers of the encoder blocks of both towers (``{tower}.encoder.layers.N.``), exactly as
  on CLIP. SigLIP's vision MAP head is not an encoder block and gets none: its attention is an
  ``nn.MultiheadAttention`` whose k/v projections are one fused ``in_proj_weight`` (no ``k_proj`` / ``v_proj``
  to adapt) and whose ``out_proj`` weight is read directly by ``F.multi_head_attention_forward``, so a LoRA
  there would change nothing before a merge and the merged weights after one. The target list handed to PEFT is
  the explicit list of matching encoder-block layers. The paper's 3.44M (ViT-B/16 CLIP, r=32, B only, k/v/fc1/
  fc2) becomes 4.13M on SigLIP-B/16: its text tower is as wide as its vision tower (768, MLP 3072, 12 blocks).
- Text: SigLIP was trained on texts padded to its 64 positions with no attention mask, pooling the LAST token
  (transformers' ``SiglipTextModel``: "The model uses the last token's hidden state, which may be padding"; no
  mask: open_clip issue #984). Its tokenizer here pads every prompt to ``max_position_embeddings`` and its text
  tower is run without the mask; prompts of another length are refused.
"""

from __future__ import annotations

import torch

from ..errors import RecipeError

SUPPORTED = ("CLIPModel (model_type 'clip') and SiglipModel (model_type 'siglip': SigLIP, SigLIP 2 at a fixed "
             "resolution)")
TOWERS = ("text_model", "vision_model")


class ModelFamily:
    """One family's answers. Subclasses set the class attributes and the two feature methods."""

    name = ""
    display = ""  # as the model card says it
    model_type = ""
    model_class_name = ""
    processor_class_name = ""
    openai_preprocessing = False  # OpenAI CLIP's own transform applies (image_preprocessing: openai)

    def model_class(self):
        import transformers

        return getattr(transformers, self.model_class_name)

    def load(self, path: str, **kwargs):
        model = self.model_class().from_pretrained(path, **kwargs)
        self.check_config(model.config)
        return model

    def check_config(self, config) -> None:
        """Refuse a configuration of the family whose pieces the method cannot use."""

    # ------------------------------------------------------------------ features
    def image_features(self, model, pixel_values, raw_feature: str):
        """(image embedding before normalising, raw feature h), both float32."""
        raise NotImplementedError

    def text_features(self, model, input_ids, attention_mask=None):
        """Text embedding before normalising, float32."""
        raise NotImplementedError

    def logit_scale(self, model) -> float:
        return float(model.logit_scale.detach().exp())

    def logit_bias(self, model) -> float:
        """The constant the family adds to every logit (0 for CLIP); the method's logits leave it out."""
        return 0.0

    def embed_dim(self, config) -> int:
        raise NotImplementedError

    def raw_width(self, config, raw_feature: str) -> int:
        raise NotImplementedError

    # ------------------------------------------------------------------ text
    def text_length(self, config) -> int | None:
        """Every prompt padded to this many tokens, or None: padded to the longest prompt of the batch."""
        return None

    def tokenizer(self, path: str, config, **kwargs):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        except ImportError as error:  # SigLIP's own tokenizer has no fast version: it needs sentencepiece
            if "SentencePiece" not in str(error):
                raise
            raise RecipeError(f"the tokenizer of {path} is a SentencePiece tokenizer and the sentencepiece package is "
                              "not installed: pip install 'segp_hf[siglip]'") from None
        length = self.text_length(config)
        return tokenizer if length is None else FixedLengthTokenizer(tokenizer, length)

    # ------------------------------------------------------------------ images
    def check_preprocessing(self, mode: str) -> None:
        if mode == "openai" and not self.openai_preprocessing:
            raise RecipeError(f"image_preprocessing=openai is OpenAI CLIP's own transform; a {self.model_class_name} "
                              "checkpoint is preprocessed by its own image processor: use image_preprocessing=hf")

    # ------------------------------------------------------------------ LoRA
    def lora_candidates(self, model) -> dict[str, list[str]]:
        """The linear layers of the encoder blocks of both towers, by their last name: {'k_proj': [full names]}."""
        found: dict[str, list[str]] = {}
        for name, module in model.named_modules():
            in_block = any(name.startswith(f"{tower}.encoder.layers.") for tower in TOWERS)
            if in_block and isinstance(module, torch.nn.Linear):
                found.setdefault(name.rsplit(".", 1)[-1], []).append(name)
        return found

    def lora_targets(self, model, requested) -> list[str]:
        """The ``target_modules`` handed to PEFT, after checking every requested name against the model's own."""
        candidates = self.lora_candidates(model)
        requested = [str(target) for target in requested]
        missing = [target for target in requested if target not in candidates]
        if missing:
            raise RecipeError(f"lora_target_modules {missing} match no linear layer of this {self.model_class_name}'s "
                              f"encoder blocks; choose from: {', '.join(sorted(candidates))}")
        return self.peft_targets(candidates, requested)

    def peft_targets(self, candidates, requested) -> list[str]:
        return sorted(name for target in requested for name in candidates[target])


class FixedLengthTokenizer:
    """A tokenizer that pads (and truncates) every text to ``length`` tokens, whatever padding it is asked for:
    the padding the family was trained with, wherever prompts are tokenised. Everything else is the tokenizer's."""

    def __init__(self, tokenizer, length: int):
        self.tokenizer, self.length = tokenizer, int(length)

    def __call__(self, text, **kwargs):
        kwargs.update(padding="max_length", max_length=self.length, truncation=True)
        return self.tokenizer(text, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __repr__(self):
        return f"FixedLengthTokenizer(length={self.length}, {self.tokenizer!r})"


class CLIPFamily(ModelFamily):
    name, display, model_type, model_class_name = "clip", "CLIP", "clip", "CLIPModel"
    processor_class_name = "CLIPImageProcessorPil"
    openai_preprocessing = True

    def image_features(self, model, pixel_values, raw_feature: str):
        """``pre_projection``: pooled CLS after post-layernorm; ``projected``: projection before normalising."""
        pooled = model.vision_model(pixel_values=pixel_values).pooler_output
        projected = model.visual_projection(pooled).float()  # the towers may run in bf16; the heads never do
        raw = pooled.float() if raw_feature == "pre_projection" else projected
        return projected, raw

    def text_features(self, model, input_ids, attention_mask=None):
        pooled = model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return model.text_projection(pooled).float()

    def embed_dim(self, config) -> int:
        return config.projection_dim

    def raw_width(self, config, raw_feature: str) -> int:
        return config.vision_config.hidden_size if raw_feature == "pre_projection" else config.projection_dim

    def peft_targets(self, candidates, requested) -> list[str]:
        # CLIP's layer names occur only in its encoder blocks: the names as given, the adapter config as ever
        return list(requested)


class SiglipFamily(ModelFamily):
    name, display, model_type, model_class_name = "siglip", "SigLIP", "siglip", "SiglipModel"
    processor_class_name = "SiglipImageProcessorPil"

    def check_config(self, config) -> None:
        if not getattr(config.vision_config, "vision_use_head", True):
            raise RecipeError("this SiglipModel has no attention-pooling head (vision_use_head: false), so no image "
                              "embedding to score; use a checkpoint with its head")

    def image_features(self, model, pixel_values, raw_feature: str):
        """The MAP head's output, the image embedding: both ``raw_feature`` settings name it (no projection)."""
        embed = model.vision_model(pixel_values=pixel_values).pooler_output.float()
        return embed, embed

    def text_features(self, model, input_ids, attention_mask=None):
        length = self.text_length(model.config)
        if input_ids.shape[-1] != length:
            raise RecipeError(f"SigLIP's text tower takes prompts padded to {length} tokens (got "
                              f"{input_ids.shape[-1]}): tokenise with the family's tokenizer (ModelFamily.tokenizer)")
        # no attention mask: SigLIP was trained attending to its padding (it pools the last token)
        return model.text_model(input_ids=input_ids).pooler_output.float()

    def logit_scale(self, model) -> float:
        scale = model.logit_scale.detach().exp()  # exp(t) alone: the bias is left out of the method's logits
        return float(scale)

    def logit_bias(self, model) -> float:
        return float(model.logit_bias.detach())

    def embed_dim(self, config) -> int:
        return config.vision_config.hidden_size

    def raw_width(self, config, raw_feature: str) -> int:
        return config.vision_config.hidden_size

    def text_length(self, config) -> int | None:
        return int(config.text_config.max_position_embeddings)


FAMILIES = {family.model_type: family for family in (CLIPFamily(), SiglipFamily())}
FAMILY_NAMES = {family.name: family for family in FAMILIES.values()}


def family_of_config(config) -> ModelFamily:
    """The family of a checkpoint's config (its ``model_type``); anything else is a one-line error."""
    model_type = getattr(config, "model_type", None)
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    hint = (" (SigLIP 2 NaFlex, Siglip2Model: use a fixed-resolution SigLIP 2 checkpoint such as "
            "google/siglip2-base-patch16-224, saved as SiglipModel)") if model_type == "siglip2" else ""
    raise RecipeError(f"model_name_or_path is a {model_type!r} checkpoint{hint}; segp_hf runs {SUPPORTED}")


def family_of_checkpoint(path: str, **kwargs) -> ModelFamily:
    """The family of the checkpoint at ``path`` (a local folder or a Hub id; ``revision``, ``cache_dir``), from its
    config alone (no weights)."""
    from transformers import AutoConfig

    return family_of_config(AutoConfig.from_pretrained(path, **kwargs))


def family_named(name: str | None) -> ModelFamily:
    """A family by the name a run saved (``model_family``); runs saved before it existed were CLIP."""
    return FAMILY_NAMES[name or "clip"]
