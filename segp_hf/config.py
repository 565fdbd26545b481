"""The settings of a run: SeGP-CL's knobs as a TrainingArguments subclass (TRL style), plus model and data
arguments. Each competitor's own knobs live in its folder (``variants/rapf/config.py``,
``variants/mg_clip/config.py``) and are composed into ``SeGPConfig`` as bases, so one flat set of settings
serves every variant: a recipe is a flat YAML file of these fields (read by ``recipe.py``), every field can be
overridden on the command line, and a checkpoint saves them flat.

SPEC defaults are the defaults here; choices SPEC marks [default] are options with that default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from .method.switches import VARIANTS
from .modeling.toy_clip import TOY_CLIP
from .validation import check_values
from .variants.mg_clip.config import MGCLIPConfig
from .variants.rapf.config import RAPFConfig


def check_settings(args) -> None:
    """The range, choice and path rules of every setting ``args`` has (the table in validation.py)."""
    check_values(args)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default=TOY_CLIP,
        metadata={"help": f"CLIP checkpoint (Hub id or local path); '{TOY_CLIP}' is the offline toy CLIP."},
    )
    model_revision: str | None = field(default=None, metadata={"help": "Pinned revision of the base model."})
    lora_r: int = field(default=32, metadata={"help": "LoRA rank."})
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA alpha; default = lora_r."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["k_proj", "v_proj", "fc1", "fc2"],
        metadata={"help": "Linear layers that get LoRA, in both towers (option: add q_proj, out_proj)."},
    )

    def __post_init__(self):
        check_settings(self)


EMPTY_LIST = "none"  # ``--key none`` empties a list setting (argparse's nargs="+" needs at least one value)


def empty_lists(args) -> None:
    """Each list setting given as ``[EMPTY_LIST]`` becomes ``[]`` (a recipe's list emptied on the command line)."""
    for name, value in vars(args).items():
        if isinstance(value, list) and [str(v).lower() for v in value] == [EMPTY_LIST]:
            setattr(args, name, [])


@dataclass
class DataArguments:
    benchmark: str = field(default="shapes", metadata={"help": "Benchmark name from the registry."})
    num_tasks: int = field(default=10, metadata={"help": "Number of class-incremental tasks."})
    class_order: str = field(
        default="default",
        metadata={"help": "Class order: 'default' (the benchmark's reference order), 'seed1993', or "
                  "comma-separated native label ids."},
    )
    prompt_template: str | None = field(
        default=None, metadata={"help": "Prompt with one '{}' for the class name; default: the benchmark's."}
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Local copy of the dataset (offline use): a DatasetDict.save_to_disk folder of the Hub "
                  "dataset, a folder of parquet files, or an image folder <split>/<class>/<image>; with benchmark "
                  "custom, your own dataset."},
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id instead of the benchmark's (a mirror with the same schema); "
                                "with benchmark custom, your own dataset on the Hub."}
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "benchmark custom: the Hub dataset's configuration (subset) name."}
    )
    dataset_revision: str | None = field(
        default=None,
        metadata={"help": "Hub revision (commit) of the dataset; default: the benchmark's pinned one, or the newest "
                  "where none is pinned (see docs/benchmarks.md)."},
    )
    image_column: str | None = field(
        default=None, metadata={"help": "Image column; default: the benchmark's (custom: the one Image column)."})
    label_column: str | None = field(
        default=None, metadata={"help": "Label column; default: the benchmark's (custom: the one ClassLabel column); "
                                "custom also takes a column of strings, or of ints with class_names_file."})
    train_split: str | None = field(default=None, metadata={"help": "benchmark custom: the training split [train]."})
    test_split: str | None = field(
        default=None, metadata={"help": "benchmark custom: the test split; default: test, else validation, else a "
                                "stratified hold-out of the train split (holdout_fraction)."})
    holdout_fraction: float = field(
        default=0.2, metadata={"help": "benchmark custom without a test split: share of each class's train images "
                               "held out for testing (seeded, the same everywhere)."})
    class_names_file: str | None = field(
        default=None, metadata={"help": "benchmark custom: class names, one a line, by label id (default: the "
                                "ClassLabel names, or the sorted label strings)."})
    imagenet_r_split: str = field(
        default="auto",
        metadata={"help": "ImageNet-R train/test: 'auto' (RAPF's list when the file names match, else the "
                  "stratified manifest), 'rapf' or 'stratified'."},
    )
    image_preprocessing: str = field(
        default="hf",
        metadata={"help": "Pixel preprocessing, the same on every machine: 'hf' (CLIPImageProcessorPil, never the "
                  "torchvision backend) or 'openai' (OpenAI CLIP's transform exactly: crop offsets rounded, not "
                  "floored; see docs/protocol.md 'Preprocessing')."},
    )
    max_train_images_per_class: int | None = field(default=None, metadata={"help": "Cap for quick runs."})
    max_eval_images_per_class: int | None = field(default=None, metadata={"help": "Cap for quick runs."})
    eval_future_tasks: bool = field(
        default=True, metadata={"help": "Also evaluate tasks not learnt yet (zero-shot), needed for FWT."}
    )
    zero_shot_sets: list[str] = field(
        default_factory=list,
        metadata={"help": "Held-out sets scored zero-shot (CLIP path) before the first task and after the last: "
                  "food101, oxford_pets, imagenet1k (the paper's), shapes_heldout (offline); 'none' empties a "
                  "recipe's list."},
    )
    zero_shot_revisions: str | None = field(
        default=None,
        metadata={"help": "Hub revision (commit, branch or tag) per zero-shot set, e.g. 'food101=COMMIT,imagenet1k="
                  "COMMIT'; a set not named loads at its pin (docs/benchmarks.md)."},
    )
    zero_shot_every_task: bool = field(
        default=False, metadata={"help": "Also score the zero_shot_sets after every task, not only the last."}
    )
    zero_shot_data_dir: str | None = field(
        default=None, metadata={"help": "Local copies of the zero_shot_sets, one folder per set name (offline use)."}
    )
    zero_shot_max_images: int | None = field(default=None, metadata={"help": "Cap per zero-shot set, for quick runs."})
    pixel_cache: str = field(
        default="memory",
        metadata={"help": "Decode, resize and crop each image once per run and keep the uint8 pixels: 'memory', "
                  "'disk' (a memory-mapped file under output_dir) or 'off' (decode at every use). Model inputs are "
                  "bit-identical in all three."},
    )
    pixel_cache_budget_gb: float = field(
        default=8.0,
        metadata={"help": "Most memory the pixel cache may take on a machine (GB; its ranks share one copy); beyond it "
                  "the cache goes to disk, then off, with a warning."},
    )
    eval_task_incremental: bool = field(
        default=False,
        metadata={"help": "Also score every seen task over its own classes only (task-incremental accuracy): "
                  "forgetting with the label space held fixed, written as acc_matrix_til / *_til."},
    )

    def __post_init__(self):
        empty_lists(self)
        check_settings(self)


@dataclass
class SeGPConfig(TrainingArguments, RAPFConfig, MGCLIPConfig):
    """TrainingArguments with SeGP-CL's knobs (and, from their folders, the competitors'). Defaults follow SPEC.md
    (paper optimiser: SGD, lr 1e-3, cosine, batch 128, 10 epochs, momentum 0.9, weight decay 0)."""

    variant: str = field(default="segp-cl", metadata={"help": f"Method variant, one of {VARIANTS}."})
    # ACGD
    lambda_acgd: float = field(default=5.0, metadata={"help": "Weight of the ACGD loss."})
    acgd_temperature: float = field(default=20.0, metadata={"help": "ACGD temperature tau_A."})
    anchor_batch_size: int = field(default=32, metadata={"help": "Anchors per training step."})
    # TSGR
    lambda_tsgr: float = field(default=1.0, metadata={"help": "Weight of the TSGR loss."})
    tsgr_k: int = field(default=10, metadata={"help": "Neighbours per new class."})
    tsgr_temperature: float = field(default=0.05, metadata={"help": "TSGR temperature tau_T."})
    tsgr_reference: str = field(
        default="pretrained", metadata={"help": "Reference text geometry: 'pretrained' (adapter off) or 'teacher'."}
    )
    # DPGD anchors
    anchors_per_class: int = field(default=5, metadata={"help": "Seed images per old class (K_seed)."})
    dpgd_steps: int = field(default=10, metadata={"help": "PGD steps K_adv."})
    dpgd_step_size: float = field(default=1.5e-3, metadata={"help": "PGD step gamma."})
    dpgd_epsilon: float = field(default=4 / 255, metadata={"help": "L_inf radius in normalised pixel space."})
    dpgd_lambda_visual: float = field(default=1.0, metadata={"help": "Weight of the prototype term lambda_p."})
    dpgd_batch_size: int = field(default=64, metadata={"help": "Anchors attacked per batch."})
    # prototypes and inference
    prototype_transfer: str = field(default="weighted", metadata={"help": "'weighted' (SPEC) or 'mean' (ADC)."})
    prototype_temperature: float = field(default=0.1, metadata={"help": "Drift weighting temperature tau_w."})
    beta: float = field(default=0.5, metadata={"help": "Weight of the prototype path at inference."})
    raw_feature: str = field(
        default="pre_projection", metadata={"help": "Raw visual feature h: 'pre_projection' or 'projected'."}
    )
    cls_classes: str = field(default="current", metadata={"help": "CE over 'current' task classes or all 'seen'."})
    # ---------------------------------------------------------------- what the competitors share (docs/variants.md)
    # Set by their published defaults (variants/*/config.py), open to every variant; their own knobs are in
    # RAPFConfig and MGCLIPConfig.
    epoch_lr_schedule: str = field(default="none", metadata={
        "help": "Learning rate stepped per epoch, replacing lr_scheduler_type: 'none' (lr_scheduler_type per step), "
        "'multistep' (RAPF: x lr_gamma at each of lr_milestones) or 'cosine' (MG-CLIP: to lr_min_ratio x lr)."})
    lr_milestones: list[int] = field(default_factory=lambda: [4, 10],
                                     metadata={"help": "Epochs (from 0) where 'multistep' multiplies the lr by lr_gamma."})
    lr_gamma: float = field(default=0.1, metadata={"help": "Factor of 'multistep' at each milestone."})
    lr_min_ratio: float = field(default=0.01, metadata={"help": "Final lr / initial lr of 'cosine' (and MG-CLIP's agent)."})
    lora_trainable: str = field(default="B", metadata={
        "help": "LoRA matrices that train: 'B' (SeGP-CL: A frozen at its random init) or 'AB' (MG-CLIP)."})
    lora_init_A: str = field(default="kaiming", metadata={
        "help": "LoRA A's init: 'kaiming' (PEFT's default) or 'xavier' (MG-CLIP's loralib, Xavier-uniform)."})
    # HF knobs whose defaults differ from TrainingArguments
    output_dir: str | None = field(default="outputs/segp-cl", metadata={"help": "Where tasks are saved."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Initial learning rate."})
    optim: str = field(default="sgd", metadata={"help": "Optimizer (TrainingArguments names)."})
    optim_args: str | None = field(default="momentum=0.9", metadata={"help": "Optimizer options."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Scheduler per task."})
    per_device_train_batch_size: int = field(
        default=128, metadata={"help": "Batch size per device (set from global_train_batch_size when that is given)."}
    )
    global_train_batch_size: int | None = field(
        default=None,
        metadata={"help": "Images per optimizer step over all processes (the paper's 128): the per-device batch is "
                  "this / (processes x gradient_accumulation_steps), which must divide."},
    )
    per_device_eval_batch_size: int = field(default=256, metadata={"help": "Eval batch size per device."})
    num_train_epochs: float = field(default=10.0, metadata={"help": "Epochs per task."})
    weight_decay: float = field(default=0.0, metadata={"help": "Weight decay."})
    max_grad_norm: float = field(
        default=0.0,
        metadata={"help": "Gradient clipping norm; 0 = no clipping, as the paper's SGD (TrainingArguments' 1.0 "
                  "would clip under lambda_A=5, tau_A=20, logit scale 100). The norm is logged either way."},
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})
    save_strategy: str = field(
        default="epoch", metadata={"help": "Trainer checkpoints inside a task, resumed after a kill ('no' to skip)."}
    )
    save_total_limit: int | None = field(default=1, metadata={"help": "Trainer checkpoints kept per task."})
    report_to: None | str | list[str] = field(default="none", metadata={
        "help": "Trackers (tensorboard, wandb, trackio, ...): losses, learning rate, grad norm, per-task accuracies and "
        "timings on one step axis across tasks; TensorBoard files go to output_dir/runs."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep our columns."})
    label_names: list[str] | None = field(default_factory=lambda: ["labels"], metadata={"help": "Label keys."})
    ddp_find_unused_parameters: bool | None = field(default=False, metadata={"help": "PeftModel under DDP."})
    logging_nan_inf_filter: bool = field(
        default=False, metadata={"help": "Keep NaN/inf in logged losses so a diverged task is stopped."}
    )
    # Hub (with push_to_hub / hub_model_id / hub_token / hub_private_repo from TrainingArguments)
    hub_push_retries: int = field(default=3, metadata={"help": "Retries of a failed per-task Hub push."})
    hub_push_backoff: float = field(
        default=2.0, metadata={"help": "Seconds before the first push retry; doubles at each retry."}
    )

    def __post_init__(self):
        check_settings(self)  # before TrainingArguments' own set-up, so its errors never come first
        super().__post_init__()
        # Pinned host memory only helps copies to an accelerator; without one torch warns at every DataLoader.
        if self.dataloader_pin_memory and not _accelerator_available():
            self.dataloader_pin_memory = False


def _accelerator_available() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


ARGUMENT_CLASSES = (ModelArguments, DataArguments, SeGPConfig)
