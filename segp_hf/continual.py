"""The continual loop: one fresh SeGPTrainer per task, evaluation of every task after each one,
per-task checkpoints, results.json, and resume after the last complete task."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, default_data_collator, set_seed

from . import checkpoints as ckpt
from .callbacks import (
    NonFiniteLossCallback,
    PrototypeCallback,
    TeacherTargetsCallback,
    TrainingDivergedError,
    prepare_teacher_targets,
)
from .config import RecipeError, config_to_dict, default_settings, method_switches
from .console import evaluation_round, install_console, say, task_summary
from .data.registry import LoadedBenchmark, load_benchmark, scenario_for
from .data.scenario import prompts_for, tokenize_prompts
from .evaluation import accuracy_round, evaluated_tasks, round_batches
from .metrics import continual_metrics
from .parallel import check_parallel_mode
from .modeling import build_lora_clip, clip_of, logit_scale_of, resolve_model_path
from .preprocessing import build_image_processor
from .figures import save_seen_curve
from .report import format_matrix, format_metrics, save_heatmap
from .retention import format_retention
from .task_state import TaskState
from .timing import task_timing, timed
from .tracking import TrackerRun
from .trainer import SeGPTrainer

logger = logging.getLogger(__name__)

ZERO_SHOT_BEFORE_FILE = "zero_shot_before.json"  # the pretrained CLIP's zero-shot accuracies, once per run
HEATMAP_PNG, CURVE_PNG = "acc_matrix.png", "accuracy_seen.png"  # pictures of results.json, next to it

# Settings that may differ between an interrupted run and its resumption without changing results.
RESUME_FREE_KEYS = {"output_dir", "logging_steps", "report_to", "per_device_eval_batch_size", "dpgd_batch_size",
                    "hub_push_retries", "hub_push_backoff", "base_model_commit", "zero_shot_sets",
                    "zero_shot_every_task", "zero_shot_data_dir", "zero_shot_max_images",
                    "pixel_cache", "pixel_cache_budget_gb"}  # the cache gives bit-identical inputs
# What a branch (train --resume_from) must keep: the adapter's shape and the task sequence.
BRANCH_FIXED_KEYS = {"model_name_or_path", "model_revision", "lora_r", "lora_alpha", "lora_target_modules",
                     "benchmark", "num_tasks", "class_order", "dataset_name", "imagenet_r_split", "prompt_template"}


def build_scenario(model_args, data_args, benchmark: LoadedBenchmark | None = None, config=None):
    """The task split and prompt template of a run (``benchmark`` overrides the registry, for tests);
    ``config`` places the pixel cache (output_dir, DataLoader workers, rank)."""
    benchmark = benchmark or load_benchmark(data_args)
    processor = build_image_processor(resolve_model_path(model_args.model_name_or_path), model_args.model_revision,
                                      data_args.image_preprocessing)
    where = {} if config is None else {"cache_dir": config.output_dir, "workers": config.dataloader_num_workers,
                                       "rank": config.process_index}
    scenario = scenario_for(benchmark, data_args, processor, **where)
    return scenario, data_args.prompt_template or benchmark.template


def read_saved_settings(folder: Path, current: dict) -> dict:
    """The settings saved in ``folder``, plus, for each setting they lack (a run saved before the setting existed),
    the setting's default, which is what that run used."""
    saved = ckpt.read_json(folder / ckpt.CONFIG_FILE)
    missing = [key for key in current if key not in saved]
    if not missing:
        return saved
    defaults = ckpt.nan_to_none(default_settings())
    return {**{key: defaults.get(key) for key in missing}, **saved}


def changed_settings(saved: dict, current: dict) -> list[str]:
    return sorted(
        key for key in set(saved) | set(current)
        if key not in RESUME_FREE_KEYS and saved.get(key) != ckpt.nan_to_none(current.get(key))
    )


def _check_resume_config(saved: dict, current: dict, path: Path):
    changed = changed_settings(saved, current)
    if changed:
        details = ", ".join(f"{k}: saved {saved.get(k)!r} vs now {current.get(k)!r}" for k in changed[:5])
        raise RecipeError(
            f"cannot resume from {path}: the settings differ from the saved run ({details}). "
            "Use the original settings or a new --output_dir."
        )


class ContinualRunner:
    """``allow_changed_settings``: the finished tasks found in output_dir may have been trained under other
    settings (``train --resume_from``, which branches a run off into a new directory); otherwise resuming
    under settings that contradict the saved ones is refused."""

    def __init__(self, model_args, data_args, config, benchmark: LoadedBenchmark | None = None,
                 allow_changed_settings: bool = False):
        check_parallel_mode(config)  # before any model or data is loaded
        self.model_args, self.data_args, self.config = model_args, data_args, config
        self.allow_changed_settings = allow_changed_settings
        self.switches = method_switches(config.variant)
        self.output_dir = Path(config.output_dir)
        self.scenario, self.template = build_scenario(model_args, data_args, benchmark, config)
        self.run_config = ckpt.nan_to_none(
            {**config_to_dict(model_args, data_args, config), "prompt_template": self.template}
        )
        set_seed(config.seed)  # LoRA A's random init depends on it
        self.model = build_lora_clip(
            model_args.model_name_or_path, r=model_args.lora_r, alpha=model_args.lora_alpha,
            target_modules=model_args.lora_target_modules, dropout=model_args.lora_dropout,
            revision=model_args.model_revision,
        )
        # The base model's commit as loaded (None for a local path): lets load_task pin the base revision.
        self.run_config["base_model_commit"] = getattr(clip_of(self.model).config, "_commit_hash", None)
        self.pusher = None  # set on the main process by run() when pushing is requested
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(model_args.model_name_or_path),
                                                  revision=model_args.model_revision)
        self.tokenizer = tokenizer
        self.retention_before, self.retention_after = None, None  # zero_shot_sets, {set: accuracy %}
        prompts = prompts_for(self.scenario.ordered_class_names, self.template)
        self.state = TaskState(
            switches=self.switches,
            text_inputs=tokenize_prompts(tokenizer, prompts),
            logit_scale=logit_scale_of(self.model),
            pixel_normalizer=self.scenario.pixel_normalizer,
        )
        num_tasks = data_args.num_tasks
        self.acc_matrix = [[math.nan] * num_tasks for _ in range(num_tasks)]
        self.til_matrix = [[math.nan] * num_tasks for _ in range(num_tasks)]  # eval_task_incremental
        self.test_sizes = [0] * num_tasks
        self.timing = [None] * num_tasks  # per task: seconds per phase and images/s (timing.py)
        self.trackers = TrackerRun(self.output_dir)  # report_to integrations on one step axis for the run
        self.step_offset = 0  # optimizer steps of the tasks before this one: the trackers' step axis
        self.console = None  # the ConsoleCallback of the current task's Trainer (None without bars)
        self.eval_images = 0  # images scored by the current task's accuracy round

    # ------------------------------------------------------------------ resume
    def resume(self) -> int:
        """Restore the state after the last complete task; returns the first task still to run."""
        done = min(ckpt.completed_tasks(self.output_dir), self.data_args.num_tasks)
        if done == 0:
            return 0
        ckpt.check_resumable(self.output_dir, done)  # a damaged file is named before anything is loaded
        last = ckpt.task_dir(self.output_dir, done - 1)
        saved = read_saved_settings(last, self.run_config)
        if not self.allow_changed_settings:
            _check_resume_config(saved, self.run_config, last)
        else:
            changed = changed_settings(saved, self.run_config)
            fixed = [key for key in changed if key in BRANCH_FIXED_KEYS]
            if fixed:
                raise RecipeError(
                    f"cannot continue after {last}: {', '.join(fixed)} differ from its run, and a branch must keep "
                    f"the model, the adapter and the task sequence (saved: "
                    f"{', '.join(f'{k}={saved.get(k)!r}' for k in fixed)})"
                )
            if changed:
                logger.warning("Continuing after %s with changed settings: %s", last, ", ".join(changed))
        ckpt.load_adapter_weights(self.model, last)
        prototypes = ckpt.load_prototypes(last)
        # On the device the Trainer trains on (the model is still on the CPU here): the next task mixes them
        # with the model's features, and CPU prototypes crashed a resumed GPU run there.
        self.state.prototypes = None if prototypes is None else prototypes.to(self.training_device())
        for task in range(done):
            saved = ckpt.read_json(ckpt.task_dir(self.output_dir, task) / ckpt.METRICS_FILE)
            self.acc_matrix[task] = ckpt.none_to_nan(saved["acc_row"])
            if "acc_row_til" in saved:
                self.til_matrix[task] = ckpt.none_to_nan(saved["acc_row_til"])
            self.test_sizes = saved["test_sizes"]
            self.retention_after = saved.get("zero_shot_after", self.retention_after)
            self.timing[task] = saved.get("timing")
            self.step_offset = saved.get("global_step_end", self.step_offset)
        logger.info("Resuming after task %d from %s", done - 1, last)
        return done

    def training_device(self) -> torch.device:
        """Where the Trainer puts the model (TrainingArguments.device: this rank's GPU, or the CPU)."""
        return torch.device(self.config.device)

    # -------------------------------------------------------------------- tasks
    def task_args(self, task: int):
        # The inner Trainer never pushes by itself: hub.py pushes each task to its own branch.
        return dataclasses.replace(self.config, output_dir=str(ckpt.trainer_dir(self.output_dir, task)), push_to_hub=False)

    def in_task_checkpoint(self, task: int) -> str | None:
        """The Trainer's last checkpoint inside ``task`` left by an interrupted run, if any (its settings
        must match this run's: a checkpoint made under other settings is refused, as for finished tasks)."""
        folder = ckpt.trainer_dir(self.output_dir, task)
        last = ckpt.last_trainer_checkpoint(folder)
        if last is None:
            return None
        _check_resume_config(read_saved_settings(folder, self.run_config), self.run_config, folder)
        logger.info("Resuming task %d from the Trainer checkpoint %s", task, last)
        return str(last)

    # ------------------------------------------------------------- processes
    @property
    def is_main_process(self) -> bool:
        return self.config.process_index == 0

    def wait_for_everyone(self):
        """Barrier across ranks (no-op in a single process): read-after-write of checkpoints is safe."""
        if self.config.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()

    def make_trainer(self, task: int) -> SeGPTrainer:
        train_dataset = self.scenario.train_dataset(task, with_index=self.switches.acgd == "new_images")
        self.state.begin_task(task, self.scenario.bounds[task], train_dataset, default_data_collator)
        trainer = SeGPTrainer(
            model=self.model,
            args=self.task_args(task),
            train_dataset=train_dataset,
            data_collator=default_data_collator,
            task_state=self.state,
            callbacks=[TeacherTargetsCallback(self.state), PrototypeCallback(self.state), NonFiniteLossCallback(self.state)],
        )
        self.console = install_console(trainer)
        self.trackers.attach(trainer, self.step_offset)
        return trainer

    def evaluate_row(self, trainer: SeGPTrainer, task: int) -> list[float]:
        """Accuracy (%) on every task after learning ``task`` (evaluation.accuracy_round); records the test sizes,
        the task-IL row and the images scored."""
        evaluated = evaluated_tasks(task, self.data_args.num_tasks, self.data_args.eval_future_tasks)
        tests = {other: self.scenario.test_dataset(other) for other in evaluated}
        per_batch = trainer.args.eval_batch_size * max(trainer.args.world_size, 1)
        batches = round_batches(tests, task, per_batch, self.data_args.eval_task_incremental)
        with timed(self.state.timing, "eval_s"), trainer.logs_muted(), \
                evaluation_round(self.console, batches, f"evaluating after task {task + 1}"):
            result = accuracy_round(trainer, self.scenario, task, tests, self.data_args.num_tasks,
                                    self.data_args.eval_task_incremental)
        for other, size in result.test_sizes.items():
            self.test_sizes[other] = size
        for other, accuracy in result.til_row.items():
            self.til_matrix[task][other] = accuracy
        self.eval_images = result.images
        return result.row

    # ------------------------------------------------------------ zero-shot retention
    def measure_retention(self, pretrained: bool) -> dict[str, float]:
        """Zero-shot accuracy (%) on the held-out ``zero_shot_sets``, of the pretrained CLIP or the model now."""
        from .modeling import adapter_disabled
        from .retention import measure_retention

        self.model.to(self.config.device)
        # the run's own image processor (image_preprocessing), built once with the scenario
        args = (self.scenario.image_processor, self.tokenizer, self.data_args, self.config.per_device_eval_batch_size,
                self.config.device)
        if not pretrained:
            return measure_retention(self.model, *args)
        with adapter_disabled(self.model):
            return measure_retention(self.model, *args)

    def retention_baseline(self):
        """The pretrained CLIP's zero-shot accuracies, measured once per run (kept in output_dir for resumes)."""
        path = self.output_dir / ZERO_SHOT_BEFORE_FILE
        if path.exists():
            saved = ckpt.read_json(path)
            if set(saved) == set(self.data_args.zero_shot_sets):
                self.retention_before = saved
                return
        self.retention_before = self.measure_retention(pretrained=True)
        ckpt.write_json_atomic(path, self.retention_before)

    def retention_results(self) -> dict:
        from .retention import retention_table

        if not self.data_args.zero_shot_sets or self.retention_before is None:
            return {}
        return {"zero_shot_retention": retention_table(self.retention_before, self.retention_after)}

    def metrics_so_far(self, task: int, convention: str = "textbook") -> dict:
        rows = [r[: task + 1] for r in self.acc_matrix[: task + 1]]
        metrics = continual_metrics(rows, task_weights=self.test_sizes[: task + 1], convention=convention)
        if convention != "textbook":
            return metrics
        if self.data_args.eval_task_incremental:
            til_rows = [r[: task + 1] for r in self.til_matrix[: task + 1]]
            til = continual_metrics(til_rows, task_weights=self.test_sizes[: task + 1])
            metrics.update({f"{key}_til": til[key] for key in ("avg", "last", "forgetting", "bwt")})
        return metrics

    def train_task(self, trainer: SeGPTrainer, task: int):
        checkpoint = self.in_task_checkpoint(task)
        if checkpoint is not None:
            # The teacher is the model as the task started: compute its targets before the Trainer
            # loads the checkpoint's weights (it does so before any callback runs).
            with timed(self.state.timing, "anchors_s"):
                prepare_teacher_targets(trainer.model, self.state, trainer.args)
        elif self.is_main_process:
            ckpt.start_trainer_dir(self.output_dir, task, self.run_config)
        self.wait_for_everyone()
        try:
            with timed(self.state.timing, "train_s"):
                trainer.train(resume_from_checkpoint=checkpoint)
        except TrainingDivergedError as error:
            # Its checkpoints may hold non-finite weights: the task restarts from its beginning.
            if self.is_main_process:
                ckpt.remove_trainer_dir(self.output_dir, task)
            raise TrainingDivergedError(f"{error}; {self.diverged_advice(task)}") from None

    def diverged_advice(self, task: int) -> str:
        if task == 0:
            return ("nothing of task 0 was saved (no task was finished yet). To go on, rerun with a lower "
                    "--learning_rate (or lower loss weights) and a new --output_dir")
        return (f"nothing of task {task} was saved (tasks 0..{task - 1} are intact in {self.output_dir}). To go on, "
                f"continue from task {task - 1} in a new directory: add --resume_from {self.output_dir}@task-{task - 1} "
                f"--output_dir NEW_DIR --learning_rate LOWER to your command")

    def run_task(self, task: int):
        started = time.perf_counter()
        trainer = self.make_trainer(task)
        if self.switches.train:
            self.train_task(trainer, task)
        self.acc_matrix[task] = self.evaluate_row(trainer, task)
        last = task == self.data_args.num_tasks - 1
        retention_now = None
        if self.data_args.zero_shot_sets and self.is_main_process and (last or self.data_args.zero_shot_every_task):
            self.retention_after = retention_now = self.measure_retention(pretrained=False)
        metrics = self.metrics_so_far(task)
        raw = {**self.state.timing, "total_s": time.perf_counter() - started}
        images = round(len(self.state.train_dataset) * (trainer.state.epoch or 0)) if self.switches.train else 0
        self.timing[task] = task_timing(raw, images, self.eval_images)
        # The task's last point on the run's step axis (one step on for a task without training).
        step_end = self.step_offset + max(trainer.state.global_step, 1)
        self.step_offset = step_end
        self.trackers.log(self.tracker_metrics(task, metrics, retention_now), step_end)
        if trainer.is_world_process_zero():
            say(task_summary(task, self.data_args.num_tasks, self.scenario.seen_end(task), metrics,
                             self.timing[task]["total_s"], retention_now))
            end = self.scenario.seen_end(task)
            classes = {
                "task": task,
                "num_tasks": self.data_args.num_tasks,
                "class_order_seen": self.scenario.class_order[:end],
                "class_names_seen": self.scenario.ordered_class_names[:end],
                "task_bounds": self.scenario.bounds[: task + 1],
                "prompt_template": self.template,
            }
            payload = {"task": task, "acc_row": self.acc_matrix[task], "test_sizes": self.test_sizes, "metrics": metrics,
                       "timing": self.timing[task], "global_step_end": step_end, **self.retention_results()}
            if self.retention_after is not None:
                payload["zero_shot_after"] = self.retention_after
            if self.data_args.eval_task_incremental:
                payload["acc_row_til"] = self.til_matrix[task]
            ckpt.save_task(self.output_dir, task, self.model, self.state.prototypes, classes, self.run_config, payload)
            self.write_results(task)
            from .hub import hub_repo_id
            from .model_card import write_task_card

            write_task_card(self.output_dir, task, hub_repo_id(self.config))
            ckpt.remove_trainer_dir(self.output_dir, task)  # superseded by task-k
            if self.pusher is not None:
                self.pusher.push(self.output_dir, task)  # never raises: failures are queued and reported
        self.wait_for_everyone()
        return metrics

    def tracker_metrics(self, task: int, metrics: dict, retention: dict | None) -> dict:
        """What the trackers get after each task (``eval_x`` is shown as ``eval/x``, the rest as ``train/x``)."""
        logs = {"eval_task": task + 1, "eval_accuracy_seen": metrics["last"]}
        logs.update({f"eval_accuracy_T{other}": self.acc_matrix[task][other] for other in range(task + 1)})
        logs.update({f"eval_{key}": metrics[key] for key in ("avg", "last", "forgetting", "bwt") if key in metrics})
        logs.update({f"eval_zero_shot_{name}": value for name, value in (retention or {}).items()})
        logs.update({f"timing_{key}": value for key, value in self.timing[task].items() if value is not None})
        return {key: float(value) for key, value in logs.items() if value is not None and math.isfinite(value)}

    def write_results(self, task: int) -> dict:
        metrics = self.metrics_so_far(task)
        results = {
            "variant": self.config.variant,
            "benchmark": self.data_args.benchmark,
            "tasks_completed": task + 1,
            "num_tasks": self.data_args.num_tasks,
            "acc_matrix": self.acc_matrix,
            "test_sizes": self.test_sizes,
            **metrics,
            "metrics_continuum": self.metrics_so_far(task, convention="continuum"),
            **self.retention_results(),
            "timing": self.timing,
        }
        if self.data_args.eval_task_incremental:
            results["acc_matrix_til"] = self.til_matrix
        ckpt.write_json_atomic(self.output_dir / ckpt.RESULTS_FILE, results)
        save_heatmap(self.acc_matrix, self.output_dir / HEATMAP_PNG, title=f"{self.config.variant}: accuracy (%)")
        save_seen_curve({self.config.variant: self.acc_matrix}, self.output_dir / CURVE_PNG,
                        task_weights=self.test_sizes)
        return results

    def check_output_dir(self):
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            probe = self.output_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise RecipeError(
                f"output_dir {self.output_dir} is not writable ({error.strerror}); choose another --output_dir"
            ) from None

    def start_pusher(self):
        """Main process, before any training: check the Hub credentials when pushing is requested."""
        from .hub import pusher_from_config

        self.pusher = pusher_from_config(self.config)
        if self.pusher is not None:
            user = self.pusher.check_credentials()
            logger.info("Pushing every task to %s as %s", self.pusher.repo_id, user)

    def run(self) -> dict:
        if self.is_main_process:
            self.check_output_dir()
            self.start_pusher()
        self.wait_for_everyone()
        first = self.resume()
        if self.data_args.zero_shot_sets and self.is_main_process:
            self.retention_baseline()
            if first == self.data_args.num_tasks and self.retention_after is None:
                self.retention_after = self.measure_retention(pretrained=False)  # a finished run saved without it
        for task in range(first, self.data_args.num_tasks):
            logger.info("Task %d/%d: classes %s", task + 1, self.data_args.num_tasks, self.scenario.bounds[task])
            self.run_task(task)
        last = self.data_args.num_tasks - 1
        if not self.is_main_process:
            self.wait_for_everyone()
            return ckpt.nan_to_none({"acc_matrix": self.acc_matrix, **self.metrics_so_far(last)})
        results = ckpt.nan_to_none(self.write_results(last))
        for tag, name in (("eval/acc_matrix", HEATMAP_PNG), ("eval/accuracy_seen_curve", CURVE_PNG)):
            self.trackers.log_image(tag, self.output_dir / name, self.step_offset)
        self.trackers.close()
        print(format_matrix(self.acc_matrix))
        print(format_metrics(results))
        if "zero_shot_retention" in results:
            print(format_retention(results["zero_shot_retention"]))
        if self.pusher is not None:
            self.pusher.push_pending(self.output_dir)  # one more try for anything still queued
            not_pushed = self.pusher.report(self.output_dir)
            if not_pushed:
                print(not_pushed)
        self.wait_for_everyone()
        return results


def run_continual(model_args, data_args, config, benchmark: LoadedBenchmark | None = None,
                  allow_changed_settings: bool = False) -> dict:
    return ContinualRunner(model_args, data_args, config, benchmark, allow_changed_settings).run()
