"""Per-task checkpoints on the Hub: model cards, pushing task k to branch ``task-k``, loading any task back.

One repo per run, one branch per task. ``task-k`` is created from ``task-(k-1)`` (``task-0`` from
``main``), the task directory is uploaded with ``revision="task-k"``, then the same files are uploaded to
``main`` so that it always follows the latest task. A push that still fails after its retries is kept
in a queue (later tasks wait behind it, as their branch is created from it) and reported at the end of
the run together with the ``segp-hf push OUTPUT_DIR REPO_ID`` command that finishes it.

``load_task`` restores a task from a local output directory, from the Hub, or from the local HF cache
(``HF_HUB_OFFLINE=1``): the base CLIP at its pinned revision, the task's adapter, prototypes, class names
and settings, as a ``LoadedTask`` that predicts with dual-path inference over the classes seen so far.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import HfApi

from . import checkpoints as ckpt
from .config import RecipeError

logger = logging.getLogger(__name__)

CARD_FILE = "README.md"
HEATMAP_FILE = "acc_matrix.png"
CURVE_FILE = "accuracy_seen.png"  # A_i after each task so far
CARD_TAGS = ["continual-learning", "clip", "lora", "segp-cl"]
METRIC_KEYS = ("avg", "last", "forgetting", "bwt", "fwt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def branch_name(task: int) -> str:
    return f"{ckpt.TASK_PREFIX}{task}"


def _looks_like_hub_id(value) -> bool:
    return isinstance(value, str) and bool(_HUB_ID.match(value)) and not Path(value).exists()


def parse_checkpoint_ref(ref: str) -> tuple[str, int | None]:
    """``"SOURCE@task-3"`` (or ``SOURCE@3``) -> ``("SOURCE", 3)``; no ``@`` -> ``(SOURCE, None)`` (latest)."""
    source, sep, suffix = ref.rpartition("@")
    if not sep:
        return ref, None
    match = re.fullmatch(r"(?:task-)?(\d+)", suffix.strip())
    if not source or not match:
        raise RecipeError(f"checkpoint '{ref}' must look like REPO_OR_DIR@task-K (e.g. user/run@task-3)")
    return source, int(match.group(1))


# --------------------------------------------------------------------------------------------- cards
def accuracy_rows(output_dir, task: int) -> list[list[float]]:
    """Rows 0..task of the accuracy matrix, read back from the task directories."""
    return [
        ckpt.none_to_nan(ckpt.read_json(ckpt.task_dir(output_dir, t) / ckpt.METRICS_FILE)["acc_row"])
        for t in range(task + 1)
    ]


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def _retention_section(table: dict | None) -> str:
    """Zero-shot accuracy on held-out sets, pretrained CLIP vs this task's model (when the run measured it)."""
    if not table:
        return ""
    rows = "\n".join(f"| {name} | {_fmt(row.get('before'))} | {_fmt(row.get('after'))} |" for name, row in table.items())
    return ("## Zero-shot retention (%)\n\nCLIP path on held-out sets no task trains on: the pretrained CLIP "
            "(before) and this model (after; n/a where not measured at this task).\n\n"
            f"| set | before | after |\n|---|---|---|\n{rows}\n\n")


def build_model_card(output_dir, task: int, repo_id: str | None = None):
    """The model card of ``output_dir/task-k`` (from the files of tasks 0..k only)."""
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import EvalResult

    from .report import format_matrix

    folder = ckpt.task_dir(output_dir, task)
    config = ckpt.read_json(folder / ckpt.CONFIG_FILE)
    classes = ckpt.read_json(folder / ckpt.CLASSES_FILE)
    saved = ckpt.read_json(folder / ckpt.METRICS_FILE)
    metrics = saved.get("metrics", {})
    rows = accuracy_rows(output_dir, task)
    num_tasks = classes.get("num_tasks", len(rows[0]))
    base = config.get("model_name_or_path")
    base_revision = config.get("model_revision") or config.get("base_model_commit")
    benchmark = config.get("benchmark")
    dataset_id = config.get("dataset_name") or benchmark
    name = repo_id or f"segp-cl-{branch_name(task)}"
    results = [
        EvalResult(
            task_type="image-classification", dataset_type=str(dataset_id), dataset_name=str(benchmark),
            metric_type="accuracy", metric_value=float(metrics[key]),
            metric_name=f"{key.capitalize()} accuracy over seen classes (%)",
        )
        for key in ("avg", "last") if metrics.get(key) is not None
    ]
    card_data = ModelCardData(
        base_model=base if _looks_like_hub_id(base) else None,
        datasets=[dataset_id] if _looks_like_hub_id(dataset_id) else None,
        library_name="peft",
        tags=list(CARD_TAGS),
        model_name=name,
        eval_results=results or None,
        segp_cl={
            "task": task,
            "num_tasks": num_tasks,
            "classes_seen": len(classes.get("class_names_seen", [])),
            "variant": config.get("variant"),
            "base_model_revision": base_revision,
            "metrics": {key: metrics.get(key) for key in METRIC_KEYS},
            "acc_matrix": ckpt.nan_to_none(rows),
        },
    )
    ref = f"{repo_id or 'OUTPUT_DIR'}@{branch_name(task)}"
    source = repo_id or str(Path(output_dir))
    revision_line = f', revision="{base_revision}"' if base_revision else ""
    names = ", ".join(classes.get("class_names_seen", []))
    body = f"""
# SeGP-CL on {benchmark}: after task {task} of {num_tasks}

A LoRA adapter (both CLIP towers, `lora_B` trained) and one visual prototype per seen class, learnt
class-incrementally with SeGP-CL (variant `{config.get('variant')}`) on top of `{base}`
(revision `{base_revision or 'default'}`). This is branch `{branch_name(task)}`; `main` holds the latest task.
Predictions are dual-path: `s * cos(F(x), u_c) + beta * s * cos(h(x), p_c)` with beta = {config.get('beta')},
over the {len(classes.get('class_names_seen', []))} classes seen so far.

## Metrics so far

| Avg | Last | Forgetting | BWT | FWT |
|---|---|---|---|---|
| {' | '.join(_fmt(metrics.get(key)) for key in METRIC_KEYS)} |

{_retention_section(saved.get("zero_shot_retention"))}## Accuracy matrix (%)

Row i: after training task i; column j: test images of task j (future columns are zero-shot).

```
{format_matrix(rows + [[math.nan] * len(rows[0])] * (len(rows[0]) - len(rows)))}
```

![accuracy matrix]({HEATMAP_FILE})

![accuracy on the classes seen so far, after each task]({CURVE_FILE})

## Classes seen so far (class order)

{names}

## How to load this task

```python
import segp_hf

task = segp_hf.load_task("{source}", task={task})
prediction = task.predict(images)          # PIL images -> prediction.class_names, prediction.indices
logits = task.logits(pixel_values)         # dual-path logits over the seen classes
```

By hand: `CLIPModel.from_pretrained("{base}"{revision_line})`, then
`PeftModel.from_pretrained(clip, "{source}", revision="{branch_name(task)}")`; the prototypes are in
`{ckpt.PROTOTYPES_FILE}`, the class names in `{ckpt.CLASSES_FILE}`, the settings in `{ckpt.CONFIG_FILE}`.

```bash
segp-hf eval --checkpoint {ref}                      # accuracy on the seen classes' test images
segp-hf train --resume_from {ref} --output_dir OUT   # continue with task {task + 1}
```
"""
    from .diagnostics import card_section  # drift section, when `segp-hf diagnose --model_card` ran on this run

    body += card_section(output_dir, task)
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


def write_task_card(output_dir, task: int, repo_id: str | None = None) -> Path:
    """Write the heatmap and README.md (model card) into ``output_dir/task-k``."""
    from .report import save_heatmap

    folder = ckpt.task_dir(output_dir, task)
    rows = accuracy_rows(output_dir, task)
    size = len(rows[0])
    save_heatmap(rows + [[math.nan] * size] * (size - len(rows)), folder / HEATMAP_FILE,
                 title=f"after task {task}: accuracy (%)")
    from .figures import save_seen_curve

    test_sizes = ckpt.read_json(folder / ckpt.METRICS_FILE).get("test_sizes")
    save_seen_curve({"this run": rows + [[math.nan] * size] * (size - len(rows))}, folder / CURVE_FILE,
                    task_weights=test_sizes, title=f"Accuracy on the classes seen, tasks 0..{task}")
    path = folder / CARD_FILE
    path.write_text(str(build_model_card(output_dir, task, repo_id)))
    return path


# ------------------------------------------------------------------------------------------- pushing
def _backoff_sleep(seconds: float) -> None:
    """The wait between push attempts (a module function so tests can replace just this wait)."""
    time.sleep(seconds)


@dataclass
class PushFailure:
    task: int
    error: str


class HubPusher:
    """Pushes task directories in order, with retries and exponential backoff; never raises on a
    failed push (the failure is recorded and the task stays queued)."""

    def __init__(self, repo_id: str, token: str | None = None, private: bool | None = None,
                 retries: int = 3, backoff: float = 2.0, api=None, sleep=None):
        if api is None:
            api = HfApi(token=token)
        self.api, self.repo_id, self.token, self.private = api, repo_id, token, private
        self.retries, self.backoff, self.sleep = max(0, int(retries)), float(backoff), sleep or _backoff_sleep
        self.pending: list[int] = []
        self.pushed: list[int] = []
        self.failures: list[PushFailure] = []
        self._repo_ready = False

    def check_credentials(self) -> str:
        try:
            user = self.api.whoami(token=self.token)
        except Exception as error:  # any failure: no token, bad token, no network
            raise RecipeError(
                f"pushing to the Hub was requested (repo '{self.repo_id}') but the credentials could not be "
                f"checked: {type(error).__name__}: {error}. Log in (`hf auth login`), set HF_TOKEN or "
                "--hub_token, or drop --push_to_hub. Nothing was trained."
            ) from None
        return user.get("name", "?") if isinstance(user, dict) else "?"

    def _attempt(self, what: str, call):
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return call()
            except Exception as error:
                if attempt == self.retries:
                    raise
                logger.warning("Hub %s failed (%s: %s); retry %d/%d in %.1fs", what, type(error).__name__,
                               error, attempt + 1, self.retries, delay)
                self.sleep(delay)
                delay *= 2

    def _push_one(self, output_dir, task: int):
        folder = ckpt.task_dir(output_dir, task)
        write_task_card(output_dir, task, self.repo_id)  # the card names this repo in its load commands
        if not self._repo_ready:
            self._attempt("create_repo", lambda: self.api.create_repo(
                self.repo_id, token=self.token, private=self.private, exist_ok=True))
            self._repo_ready = True
        branch = branch_name(task)
        parent = branch_name(task - 1) if task > 0 else "main"
        self._attempt(f"create_branch {branch}", lambda: self.api.create_branch(
            self.repo_id, branch=branch, revision=parent, token=self.token, exist_ok=True))
        message = f"SeGP-CL task {task}"
        for revision in (branch, "main"):
            self._attempt(f"upload to {revision}", lambda revision=revision: self.api.upload_folder(
                repo_id=self.repo_id, folder_path=str(folder), revision=revision, token=self.token,
                commit_message=f"{message} ({branch})"))

    def push(self, output_dir, task: int) -> bool:
        """Queue ``task`` and push everything queued, in order. True when nothing is left pending."""
        if task not in self.pending and task not in self.pushed:
            self.pending.append(task)
            self.pending.sort()
        return self.push_pending(output_dir)

    def push_pending(self, output_dir) -> bool:
        while self.pending:
            task = self.pending[0]
            try:
                self._push_one(output_dir, task)
            except Exception as error:
                message = f"{type(error).__name__}: {error}"
                self.failures.append(PushFailure(task, message))
                logger.error("Could not push task %d to %s (%s); training goes on, the local checkpoint is kept",
                             task, self.repo_id, message)
                return False
            self.pending.pop(0)
            self.pushed.append(task)
            logger.info("Pushed task %d to %s (branch %s, main updated)", task, self.repo_id, branch_name(task))
        return True

    def report(self, output_dir) -> str | None:
        """What was not pushed and how to push it later (None when everything was pushed)."""
        if not self.pending:
            return None
        last_error = {f.task: f.error for f in self.failures}
        lines = [f"Not pushed to {self.repo_id} (the local checkpoints are complete):"]
        lines += [f"  {branch_name(t)}: {last_error.get(t, 'waiting for an earlier task')}" for t in self.pending]
        lines.append(f"Push them later with:  segp-hf push {Path(output_dir).resolve()} {self.repo_id}")
        return "\n".join(lines)


def hub_repo_id(config) -> str | None:
    """The run's repo id when pushing is requested (TrainingArguments' push_to_hub / hub_model_id)."""
    if not getattr(config, "push_to_hub", False):
        return None
    return config.hub_model_id or Path(config.output_dir).resolve().name


def pusher_from_config(config, api=None) -> HubPusher | None:
    repo_id = hub_repo_id(config)
    if repo_id is None:
        return None
    return HubPusher(repo_id, token=config.hub_token, private=config.hub_private_repo,
                     retries=getattr(config, "hub_push_retries", 3), backoff=getattr(config, "hub_push_backoff", 2.0),
                     api=api)


def push_output_dir(output_dir, repo_id: str, token=None, private=None, retries=3, backoff=2.0, api=None) -> HubPusher:
    """Push every complete task of a local run (``segp-hf push``)."""
    done = ckpt.completed_tasks(output_dir)
    if done == 0:
        raise RecipeError(f"{output_dir} holds no complete task checkpoint (task-0/metrics.json) to push")
    for task in range(done):  # a damaged task is named, never pushed
        ckpt.verify_task(ckpt.task_dir(output_dir, task), task)
    pusher = HubPusher(repo_id, token=token, private=private, retries=retries, backoff=backoff, api=api)
    pusher.check_credentials()
    pusher.pending = list(range(done))
    pusher.push_pending(output_dir)
    return pusher


# ------------------------------------------------------------------------------------------- loading
class TaskNotFoundError(RecipeError):
    """The requested task has no checkpoint at that source."""


@dataclass
class TaskPrediction:
    indices: torch.Tensor  # positions in ``LoadedTask.class_names`` (class order)
    class_names: list[str]
    logits: torch.Tensor


class LoadedTask:
    """A task checkpoint ready to predict: dual-path logits over the classes seen up to that task."""

    def __init__(self, model, prototypes, classes: dict, config: dict, tokenizer, image_processor, source: str):
        from .config import method_switches
        from .data.scenario import prompts_for, tokenize_prompts
        from .modeling import logit_scale_of

        self.model = model.eval()
        self.prototypes = prototypes
        self.classes = classes
        self.config = config
        self.task = int(classes["task"])
        self.class_names = list(classes["class_names_seen"])
        self.class_order = list(classes["class_order_seen"])
        self.tokenizer, self.image_processor, self.source = tokenizer, image_processor, source
        self.logit_scale = logit_scale_of(model)
        self.raw_feature = config.get("raw_feature", "pre_projection")
        switches = method_switches(config.get("variant", "segp-cl"))
        self.beta = float(config.get("beta", 0.5)) if switches.beta_enabled else 0.0
        template = classes.get("prompt_template") or config.get("prompt_template")
        self.text_inputs = tokenize_prompts(tokenizer, prompts_for(self.class_names, template))
        self._text = None

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
        from .modeling import encode_texts

        if self._text is None:
            self._text = encode_texts(self.model, **{k: v.to(self.device) for k, v in self.text_inputs.items()})
        return self._text

    @torch.no_grad()
    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Dual-path logits (images x seen classes), exactly as the run's evaluation scores them."""
        from .modeling import encode_images, float32_heads
        from .prototypes import dual_path_logits

        embeds, raw = encode_images(self.model, pixel_values.to(self.device), self.raw_feature)
        prototypes = self.prototypes
        with float32_heads(raw.device):  # as in training: scores in float32 even under a caller's autocast
            if not self.beta or prototypes is None or prototypes.shape[0] < len(self.class_names):
                return dual_path_logits(embeds, self.text_embeddings(), raw, None, self.logit_scale, beta=0.0)
            prototypes = prototypes[: len(self.class_names)].to(raw.device)
            return dual_path_logits(embeds, self.text_embeddings(), raw, prototypes, self.logit_scale, self.beta)

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


def _local_tasks(output_dir: Path) -> list[int]:
    tasks = []
    for child in output_dir.glob(f"{ckpt.TASK_PREFIX}*"):
        match = re.fullmatch(rf"{ckpt.TASK_PREFIX}(\d+)", child.name)
        if match and ckpt.is_complete(child):
            tasks.append(int(match.group(1)))
    return sorted(tasks)


def _cached_tasks(repo_id: str, cache_dir=None) -> list[int]:
    from huggingface_hub import constants

    refs = Path(cache_dir or constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs"
    names = [p.name for p in refs.glob(f"{ckpt.TASK_PREFIX}*")] if refs.is_dir() else []
    return sorted(int(m.group(1)) for n in names if (m := re.fullmatch(rf"{ckpt.TASK_PREFIX}(\d+)", n)))


def available_tasks(source: str, cache_dir=None, token=None) -> list[int]:
    """Tasks with a checkpoint at ``source``: local task dirs, the repo's task branches, or (offline,
    or when the Hub cannot be reached) the task branches in the local HF cache."""
    path = Path(source)
    if path.is_dir():
        return _local_tasks(path)
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        try:
            refs = HfApi(token=token).list_repo_refs(source)
            names = [branch.name for branch in refs.branches]
            return sorted(int(m.group(1)) for n in names if (m := re.fullmatch(rf"{ckpt.TASK_PREFIX}(\d+)", n)))
        except Exception:  # unreachable: fall back to what the cache holds
            pass
    return _cached_tasks(source, cache_dir)


def _missing_task(source, task, cache_dir=None, token=None, reason: str = "") -> TaskNotFoundError:
    found = available_tasks(source, cache_dir, token)
    listed = ", ".join(branch_name(t) for t in found) if found else "none"
    extra = f" ({reason})" if reason else ""
    return TaskNotFoundError(f"no checkpoint for {branch_name(task)} at '{source}'{extra}; available: {listed}")


def resolve_task_folder(source: str, task: int | None = None, cache_dir=None, token=None) -> tuple[Path, bool]:
    """The local folder holding ``task`` of ``source`` (a run's output dir, a task dir, or a Hub repo,
    fetched into / read from the HF cache). Returns ``(folder, from_hub)``."""
    path = Path(source)
    if path.is_dir():
        if ckpt.is_complete(path):  # a task directory itself
            saved = ckpt.read_task_json(path, ckpt.CLASSES_FILE)["task"]
            if task is not None and task != saved:
                raise TaskNotFoundError(f"'{source}' is the checkpoint of {branch_name(saved)}, not {branch_name(task)}")
            return path, False
        if task is None:
            tasks = _local_tasks(path)
            if not tasks:
                raise TaskNotFoundError(f"'{source}' holds no complete task checkpoint")
            task = tasks[-1]
        folder = ckpt.task_dir(path, task)
        if not ckpt.is_complete(folder):
            raise _missing_task(source, task)
        return folder, False
    if not _looks_like_hub_id(source) and not re.fullmatch(r"[\w.-]+", source):
        raise TaskNotFoundError(f"'{source}' is neither a local directory nor a Hub repo id")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    revision = "main" if task is None else branch_name(task)
    try:
        folder = snapshot_download(source, revision=revision, cache_dir=cache_dir, token=token)
    except RevisionNotFoundError:
        raise _missing_task(source, task, cache_dir, token) from None
    except RepositoryNotFoundError:
        raise TaskNotFoundError(f"Hub repo '{source}' not found (or not accessible with this token)") from None
    except (LocalEntryNotFoundError, EntryNotFoundError) as error:
        if task is None:
            raise TaskNotFoundError(f"'{source}' is not in the local cache and the Hub cannot be reached") from None
        raise _missing_task(source, task, cache_dir, token, reason=type(error).__name__) from None
    if not ckpt.is_complete(folder):
        raise TaskNotFoundError(f"'{source}' at revision {revision} is not a SeGP-CL task checkpoint")
    return Path(folder), True


def load_task(repo_id_or_path: str, task: int | None = None, *, cache_dir=None, token=None, device=None,
              base_model: str | None = None, base_revision: str | None = None, merge: bool = True) -> LoadedTask:
    """Load task ``task`` (default: the latest) of a run from a local output directory, a Hub repo
    (branch ``task-k``) or, with ``HF_HUB_OFFLINE=1``, from the local HF cache.

    The base CLIP is the run's ``model_name_or_path`` at its pinned revision (``model_revision``, else
    the commit the run loaded); ``base_model`` / ``base_revision`` override them (e.g. a local copy).
    ``merge`` (default): the adapter is merged into the base weights (PEFT ``merge_and_unload``) and
    ``LoadedTask.model`` is a plain ``CLIPModel``: prediction as fast as the base CLIP's, logits equal to
    the adapter's up to float rounding. ``merge=False`` keeps the ``PeftModel`` (adapter unmerged).
    """
    from peft import PeftModel
    from transformers import AutoTokenizer, CLIPModel

    from .modeling import freeze_lora_A, resolve_model_path
    from .preprocessing import build_image_processor

    folder, from_hub = resolve_task_folder(str(repo_id_or_path), task, cache_dir, token)
    ckpt.verify_task(folder, task if task is not None else ckpt.read_task_json(folder, ckpt.CLASSES_FILE)["task"])
    config = ckpt.read_json(folder / ckpt.CONFIG_FILE)
    classes = ckpt.read_json(folder / ckpt.CLASSES_FILE)
    base = resolve_model_path(base_model or config["model_name_or_path"])
    revision = base_revision or (None if base_model else config.get("model_revision") or config.get("base_model_commit"))
    base_kwargs = {"cache_dir": cache_dir} if cache_dir is not None and not Path(base).is_dir() else {}
    if revision and not Path(base).is_dir():
        base_kwargs["revision"] = revision
    clip = CLIPModel.from_pretrained(base, **base_kwargs)
    from .modeling import peft_wrapping

    with peft_wrapping():
        if from_hub:
            # The adapter by revision, the way a user would: PeftModel.from_pretrained(clip, repo, revision="task-k").
            model = PeftModel.from_pretrained(clip, str(repo_id_or_path), revision=branch_name(int(classes["task"])),
                                              cache_dir=cache_dir, token=token)
        else:
            model = PeftModel.from_pretrained(clip, str(folder))
    freeze_lora_A(model)
    if merge:
        # Safe in place: this model only ever predicts (the training model is never merged).
        model = model.merge_and_unload()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(base, **base_kwargs)
    processor = build_image_processor(base, mode=config.get("image_preprocessing") or "hf", **base_kwargs)
    loaded = LoadedTask(model, ckpt.load_prototypes(folder), classes, config, tokenizer, processor, str(repo_id_or_path))
    return loaded.to(device) if device is not None else loaded


def fetch_task_dirs(source: str, task: int, output_dir, cache_dir=None, token=None) -> Path:
    """Copy (local) or download (Hub) the checkpoints of tasks 0..task of a run into ``output_dir``,
    so that the normal resume path continues with task + 1."""
    output_dir = Path(output_dir)
    existing = _local_tasks(output_dir) if output_dir.is_dir() else []
    if existing:
        raise RecipeError(
            f"--resume_from needs an output_dir without task checkpoints, but {output_dir} already holds "
            f"{', '.join(branch_name(t) for t in existing)}; choose a new --output_dir"
        )
    folders = [resolve_task_folder(source, t, cache_dir, token)[0] for t in range(task + 1)]
    for t, folder in enumerate(folders):  # all checked before any is copied
        ckpt.verify_task(folder, t)
    output_dir.mkdir(parents=True, exist_ok=True)
    for t, folder in enumerate(folders):
        target = ckpt.task_dir(output_dir, t)
        staging = output_dir / f".{target.name}.fetch"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(".cache", ".git*"))  # follows cache symlinks
        staging.rename(target)
    return output_dir
