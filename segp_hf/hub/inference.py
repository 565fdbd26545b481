"""Using a finished task: ``load_task`` restores it from a local output directory, from the Hub, or from the
local HF cache (``HF_HUB_OFFLINE=1``): the base model (CLIP or SigLIP) at its pinned revision, the task's adapter,
prototypes, class names and settings, as a ``LoadedTask`` that predicts with the run's dual-path scorer over the classes
seen so far."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from ..data.scenario import prompts_for, tokenize_prompts
from ..errors import RecipeError
from ..method.prototypes import effective_beta, task_scores
from ..method.task_state import TaskState
from ..modeling.families import family_of_checkpoint
from ..modeling.preprocessing import build_image_processor
from ..modeling.student import encode_texts, logit_scale_of, peft_wrapping, resolve_model_path, train_only_lora_B
from ..recipe import default_settings
from ..run import checkpoints as ckpt
from ..variants.registry import variant_method
from .tasks import branch_name, parse_checkpoint_ref, resolve_task_folder


@dataclass
class TaskPrediction:
    indices: torch.Tensor  # positions in ``LoadedTask.class_names`` (class order)
    class_names: list[str]
    logits: torch.Tensor


def saved_run_settings(config: dict) -> SimpleNamespace:
    """A task's saved settings as attributes; a setting the run saved no value for (it did not exist yet) has the
    value runs of that time used (``recipe.default_settings``)."""
    return SimpleNamespace(**{**ckpt.nan_to_none(default_settings(config.get("variant"))), **config})


class LoadedTask:
    """A task checkpoint ready to predict: dual-path logits over the classes seen up to that task."""

    def __init__(self, model, prototypes, classes: dict, config: dict, tokenizer, image_processor, source: str,
                 variant_state=None):
        self.model = model.eval()
        self.variant_state = variant_state  # a competitor's state (variants/): its own rule replaces the dual path
        self.classes = classes
        self.config = config
        self.settings = saved_run_settings(config)  # what the scorer reads of the run's settings
        self.task = int(classes["task"])
        self.class_names = list(classes["class_names_seen"])
        self.class_order = list(classes["class_order_seen"])
        self.tokenizer, self.image_processor, self.source = tokenizer, image_processor, source
        template = classes.get("prompt_template") or config.get("prompt_template")
        self.text_inputs = tokenize_prompts(tokenizer, prompts_for(self.class_names, template))
        self.task_state = TaskState.for_run(config.get("variant", "segp-cl"), self.text_inputs, logit_scale_of(model),
                                            prototypes=prototypes)
        self._text = None

    @property
    def logit_scale(self) -> float:
        return self.task_state.logit_scale

    @property
    def prototypes(self) -> torch.Tensor | None:
        """The task's prototype bank (kept in the task state the scorer reads)."""
        return self.task_state.prototypes

    @property
    def raw_feature(self) -> str:
        return self.settings.raw_feature

    @property
    def beta(self) -> float:
        """The prototype path's weight at inference (0 for a variant without prototypes)."""
        return effective_beta(self.task_state.switches, self.settings.beta)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def to(self, device):
        self.model.to(device)
        self._text = None
        return self

    def __repr__(self):
        return f"LoadedTask(task={self.task}, classes={len(self.class_names)}, source={self.source!r})"

    @torch.no_grad()
    def text_embeddings(self) -> torch.Tensor:
        if self._text is None:
            self._text = encode_texts(self.model, **{k: v.to(self.device) for k, v in self.text_inputs.items()})
        return self._text

    @torch.no_grad()
    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits (images x seen classes) by the scorer the run's evaluation used (``method.prototypes.task_scores``):
        the dual path, or a competitor's own rule."""
        return task_scores(self.model, pixel_values.to(self.device), self.text_embeddings(),
                           torch.arange(len(self.class_names)), self.task_state, self.settings, self.variant_state)

    def predict(self, images, batch_size: int = 64) -> TaskPrediction:
        """PIL images (or a ``pixel_values`` tensor) -> predicted class positions and names."""
        if isinstance(images, torch.Tensor):
            logits = self.logits(images)
        else:
            images = [images] if not isinstance(images, (list, tuple)) else list(images)
            chunks = []
            for start in range(0, len(images), batch_size):
                batch = [image.convert("RGB") for image in images[start:start + batch_size]]
                pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
                chunks.append(self.logits(pixels))
            logits = torch.cat(chunks)
        indices = logits.argmax(dim=-1).cpu()
        return TaskPrediction(indices, [self.class_names[i] for i in indices.tolist()], logits)


def _source_and_task(repo_id_or_path, task: int | None) -> tuple[str, int | None]:
    """``"SOURCE@task-k"`` -> ``("SOURCE", k)`` (a path that exists as given is a path); the task named twice must
    agree."""
    source = str(repo_id_or_path)
    if "@" not in source or Path(source).exists():
        return source, task
    source, named = parse_checkpoint_ref(source)
    if task is not None and named is not None and task != named:
        raise RecipeError(f"'{repo_id_or_path}' names {branch_name(named)} but task={task} was asked for")
    return source, named if named is not None else task


def load_task(repo_id_or_path: str, task: int | None = None, *, cache_dir=None, token=None, device=None,
              base_model: str | None = None, base_revision: str | None = None, merge: bool = True) -> LoadedTask:
    """Load task ``task`` (default: the latest) of a run from a local output directory, a Hub repo
    (branch ``task-k``) or, with ``HF_HUB_OFFLINE=1``, from the local HF cache.

    The base CLIP is the run's ``model_name_or_path`` at its pinned revision (``model_revision``, else
    the commit the run loaded); ``base_model`` / ``base_revision`` override them (e.g. a local copy).
    ``merge`` (default): the adapter is merged into the base weights (PEFT ``merge_and_unload``) and
    ``LoadedTask.model`` is a plain ``CLIPModel`` (``SiglipModel``): prediction as fast as the base model's, logits
    equal to the adapter's up to float rounding. ``merge=False`` keeps the ``PeftModel`` (adapter unmerged).
    ``repo_id_or_path`` may name the task itself, as the command line does: ``"ORG/NAME@task-3"``.
    """
    from peft import PeftModel

    repo_id_or_path, task = _source_and_task(repo_id_or_path, task)
    folder, from_hub = resolve_task_folder(repo_id_or_path, task, cache_dir, token)
    # read first: a competitor's task folder also holds its state (variants/registry.py); a missing file is
    # named by verify_task
    config = ckpt.read_task_json(folder, ckpt.CONFIG_FILE, task) if (folder / ckpt.CONFIG_FILE).is_file() else {}
    method = variant_method(config.get("variant"))
    ckpt.verify_task(folder, task if task is not None else ckpt.read_task_json(folder, ckpt.CLASSES_FILE)["task"],
                     required=method.files if method else ())
    classes = ckpt.read_json(folder / ckpt.CLASSES_FILE)
    base = resolve_model_path(base_model or config["model_name_or_path"])
    revision = base_revision or (None if base_model else config.get("model_revision") or config.get("base_model_commit"))
    base_kwargs = {"cache_dir": cache_dir} if cache_dir is not None and not Path(base).is_dir() else {}
    if revision and not Path(base).is_dir():
        base_kwargs["revision"] = revision
    family = family_of_checkpoint(base, **base_kwargs)  # CLIP or SigLIP (modeling/families.py)
    clip = family.load(base, **base_kwargs)

    with peft_wrapping():
        if from_hub:
            # The adapter by revision, the way a user would: PeftModel.from_pretrained(clip, repo, revision="task-k").
            model = PeftModel.from_pretrained(clip, str(repo_id_or_path), revision=branch_name(int(classes["task"])),
                                              cache_dir=cache_dir, token=token)
        else:
            model = PeftModel.from_pretrained(clip, str(folder))
    train_only_lora_B(model)
    if merge:
        # Safe in place: this model only ever predicts (the training model is never merged).
        model = model.merge_and_unload()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    tokenizer = family.tokenizer(base, clip.config, **base_kwargs)  # pads the family's way
    processor = build_image_processor(base, mode=config.get("image_preprocessing") or "hf", **base_kwargs)
    state = method.state.load(folder) if method else None
    loaded = LoadedTask(model, ckpt.load_prototypes(folder), classes, config, tokenizer, processor, str(repo_id_or_path),
                        state)
    return loaded.to(device) if device is not None else loaded
