"""The continual loop: one fresh SeGPTrainer per task, evaluation of every task after each one,
per-task checkpoints, results.json, and resume after the last complete task."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import torch
from transformers import default_data_collator, set_seed

from ..callbacks import NonFiniteLossCallback, PrototypeCallback, TeacherTargetsCallback, diverged_advice
from ..data.pixel_cache import GIB
from ..data.registry import load_benchmark
from ..data.scenario import prompts_for, scenario_for, tokenize_prompts
from ..data.spec import LoadedBenchmark
from ..errors import TrainingDivergedError
from ..evaluation.metrics import continual_metrics
from ..evaluation.rounds import accuracy_round, evaluated_tasks, round_batches
from ..evaluation.zero_shot import (
    ZERO_SHOT_BEFORE_FILE,
    HeldOutSets,
    format_retention,
    measure_model_retention,
    retention_table,
    saved_baseline,
)
from ..hub.model_card import write_task_card
from ..hub.push import hub_repo_id, pusher_from_config
from ..hub.tasks import model_commit
from ..method.task_state import TaskState
from ..method.teacher import prepare_teacher_targets
from ..modeling.preprocessing import build_image_processor
from ..modeling.student import build_lora_clip, clip_of, family_of, logit_scale_of, lora_choices, resolve_model_path
from ..recipe import config_to_dict
from ..trainer import SeGPTrainer
from ..variants.registry import competitor, held_out_scorer
from . import checkpoints as ckpt
from .console import evaluation_round, install_console, say, task_summary
from .distributed import check_parallel_mode, machine_peers, main_process_value
from .lock import output_dir_lock
from .preemption import StopCallback, StopRequest, stop_requests
from .results import CURVE_PNG, HEATMAP_PNG, format_matrix, format_metrics, task_classes, tracker_metrics, write_results
from .resume import check_branch_config, check_resume_config, read_saved_settings, resumed_base_revision
from .timing import task_timing, timed
from .tracking import TrackerRun

logger = logging.getLogger(__name__)

def build_scenario(model_args, data_args, benchmark: LoadedBenchmark | None = None, config=None, peers=None):
    """The task split and prompt template of a run (``benchmark`` overrides the registry, for tests);
    ``config`` places the pixel cache (output_dir, DataLoader workers), shared by ``peers`` (a MachinePeers:
    the ranks of this machine; default: asked of every rank, a collective)."""
    # the processor first: it reads the checkpoint's config, so a model family we do not run is refused before data
    processor = build_image_processor(resolve_model_path(model_args.model_name_or_path), model_args.model_revision,
                                      data_args.image_preprocessing)
    benchmark = benchmark or load_benchmark(data_args)
    where = {}
    if config is not None:  # every rank: the ranks of one machine share one pixel cache
        peers = peers or machine_peers(config.world_size)
        where = {"cache_dir": peers.cache_dir(config.output_dir), "workers": config.dataloader_num_workers,
                 "peers": peers.share, "shm_dir": peers.shm_dir()}
    scenario = scenario_for(benchmark, data_args, processor, **where)
    return scenario, data_args.prompt_template or benchmark.template


class ContinualRunner:
    """``allow_changed_settings``: the finished tasks found in output_dir may have been trained under other
    settings (``train --resume_from``, which branches a run off into a new directory); otherwise resuming
    under settings that contradict the saved ones is refused."""

    def __init__(self, model_args, data_args, config, benchmark: LoadedBenchmark | None = None,
                 allow_changed_settings: bool = False):
        check_parallel_mode(config)  # before any model or data is loaded
        self.model_args, self.data_args, self.config = model_args, data_args, config
        self.allow_changed_settings = allow_changed_settings
        self.output_dir = Path(config.output_dir)
        # What loads the base: at the commit the finished tasks used, when resuming without --model_revision.
        self.base_args = dataclasses.replace(model_args, model_revision=resumed_base_revision(self.output_dir,
                                                                                               model_args))
        self.peers = machine_peers(config.world_size)  # the ranks of this machine share the pixel cache
        self.scenario, self.template = build_scenario(self.base_args, data_args, benchmark, config, self.peers)
        self.run_config = ckpt.nan_to_none(
            {**config_to_dict(model_args, data_args, config), "prompt_template": self.template}
        )
        self.model = self.build_model()
        self.variant = competitor(config.variant, self.model, config.seed, self.training_device())  # else None
        # The base model's commit as loaded (None for a local path): lets load_task pin the base revision.
        self.run_config["base_model_commit"] = model_commit(model_args.model_name_or_path, self.base_args.model_revision)
        family = family_of(self.model)  # CLIP or SigLIP (modeling/families.py): the model card names its class
        self.run_config["model_family"] = family.name
        # The dataset's commit as loaded from the Hub (None for local or built data, or offline and never resolved).
        self.run_config["dataset_commit"] = self.scenario.provenance.get("commit")
        self.pusher = None  # set on the main process by run() when pushing is requested
        self.tokenizer = family.tokenizer(resolve_model_path(model_args.model_name_or_path), clip_of(self.model).config,
                                          revision=self.base_args.model_revision)  # pads the family's way
        self.retention_before, self.retention_after = None, None  # zero_shot_sets, {set: accuracy %}
        self.retention_seconds = {}  # wall time of each retention measurement of this process ("before", "after")
        self._held_out = None  # the zero-shot sets this rank scores (HeldOutSets), loaded on first use
        self.state = TaskState.for_run(
            config.variant,
            text_inputs=tokenize_prompts(self.tokenizer, prompts_for(self.scenario.ordered_class_names, self.template)),
            logit_scale=logit_scale_of(self.model),
            pixel_normalizer=self.scenario.pixel_normalizer,
        )
        num_tasks = data_args.num_tasks
        self.acc_matrix = [[math.nan] * num_tasks for _ in range(num_tasks)]
        self.til_matrix = [[math.nan] * num_tasks for _ in range(num_tasks)]  # eval_task_incremental
        self.test_sizes = [0] * num_tasks
        self.timing = [None] * num_tasks  # per task: seconds per phase and images/s (run/timing.py)
        self.trackers = TrackerRun(self.output_dir)  # report_to integrations on one step axis for the run
        self.step_offset = 0  # optimizer steps of the tasks before this one: the trackers' step axis
        self.console = None  # the ConsoleCallback of the current task's Trainer (None without bars)
        self.eval_images = 0  # images scored by the current task's accuracy round
        self.stop = StopRequest()  # SIGTERM / SIGINT while run() runs (run/preemption.py)

    def build_model(self):
        """The PEFT-LoRA student (CLIP or SigLIP); the seed is set first, as LoRA A's random init depends on it."""
        set_seed(self.config.seed)
        args = self.base_args
        return build_lora_clip(args.model_name_or_path, r=args.lora_r, alpha=args.lora_alpha,
                               target_modules=args.lora_target_modules, dropout=args.lora_dropout,
                               revision=args.model_revision, **lora_choices(self.config))

    # ------------------------------------------------------------------ resume
    def resume(self) -> int:
        """Restore the state after the last complete task; returns the first task still to run."""
        done = min(ckpt.completed_tasks(self.output_dir), self.data_args.num_tasks)
        if done == 0:
            return 0
        ckpt.check_resumable(self.output_dir, done, self.variant.files if self.variant else ())  # before any load
        last = ckpt.task_dir(self.output_dir, done - 1)
        check = check_branch_config if self.allow_changed_settings else check_resume_config
        check(read_saved_settings(last, self.run_config), self.run_config, last)
        ckpt.load_adapter_weights(self.model, last)
        if self.variant:  # a competitor's state (variants/registry.py)
            self.variant.state.restore(last)
        prototypes = ckpt.load_prototypes(last)
        # On the device the Trainer trains on (the model is still on the CPU here): the next task mixes them
        # with the model's features, and CPU prototypes crashed a resumed GPU run there.
        self.state.prototypes = None if prototypes is None else prototypes.to(self.training_device())
        self.restore_rows(done)
        logger.info("Resuming after task %d from %s", done - 1, last)
        return done

    def restore_rows(self, done: int):
        """The accuracy rows, test sizes, retention, timing and step axis of the ``done`` saved tasks."""
        for task in range(done):
            saved = ckpt.read_json(ckpt.task_dir(self.output_dir, task) / ckpt.METRICS_FILE)
            self.acc_matrix[task] = ckpt.none_to_nan(saved["acc_row"])
            if "acc_row_til" in saved:
                self.til_matrix[task] = ckpt.none_to_nan(saved["acc_row_til"])
            self.test_sizes = saved["test_sizes"]
            self.retention_after = saved.get("zero_shot_after", self.retention_after)
            self.timing[task] = saved.get("timing")
            self.step_offset = saved.get("global_step_end", self.step_offset)

    def training_device(self) -> torch.device:
        """Where the Trainer puts the model (TrainingArguments.device: this rank's GPU, or the CPU)."""
        return torch.device(self.config.device)

    # -------------------------------------------------------------------- tasks
    def task_args(self, task: int):
        # The inner Trainer never pushes by itself: hub/push.py pushes each task to its own branch.
        return dataclasses.replace(self.config, output_dir=str(ckpt.trainer_dir(self.output_dir, task)), push_to_hub=False)

    def in_task_checkpoint(self, task: int) -> str | None:
        """The Trainer's last checkpoint inside ``task`` left by an interrupted run, if any (its settings
        must match this run's: a checkpoint made under other settings is refused, as for finished tasks)."""
        folder = ckpt.trainer_dir(self.output_dir, task)
        last = ckpt.last_trainer_checkpoint(folder)
        if last is None:
            return None
        check_resume_config(read_saved_settings(folder, self.run_config), self.run_config, folder)
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
        train_dataset = self.scenario.train_dataset(task, with_index=self.state.switches.distillation == "new_images")
        self.state.begin_task(task, self.scenario.bounds[task], train_dataset, default_data_collator)
        trainer = (self.variant.trainer if self.variant else SeGPTrainer)(  # a competitor's own (variants/registry.py)
            model=self.model, args=self.task_args(task), train_dataset=train_dataset, data_collator=default_data_collator,
            task_state=self.state,
            callbacks=[StopCallback(self.stop, task), TeacherTargetsCallback(self.state), PrototypeCallback(self.state),
                       NonFiniteLossCallback(self.state)])
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
        """Zero-shot accuracy (%) on the held-out ``zero_shot_sets``, of the pretrained CLIP or the model now (by
        the variant's own rule where it has one for held-out classes), with the run's image processor. Every
        rank scores its shard of each set (a collective)."""
        scorer = held_out_scorer(self.variant.state, self.config) if self.variant else None
        started = time.perf_counter()
        scores = measure_model_retention(self.model, pretrained, self.held_out_sets(), self.tokenizer,
                                         self.config.per_device_eval_batch_size, self.config.device, scorer)
        self.retention_seconds["before" if pretrained else "after"] = round(time.perf_counter() - started, 3)
        return scores

    def held_out_sets(self) -> HeldOutSets:
        """The zero-shot sets as this rank scores them, decoded once per run into the pixel cache (what the
        benchmark's stores leave of ``pixel_cache_budget_gb``)."""
        if self._held_out is None:
            plan = self.scenario.pixel_cache
            used = self.scenario.cache_need_bytes() if plan is not None and plan.mode == "memory" else 0
            self._held_out = HeldOutSets(
                self.data_args, self.scenario.image_processor, self.scenario.pixel_normalizer,
                cache_dir=self.peers.cache_dir(self.output_dir), workers=self.config.dataloader_num_workers,
                rank=self.config.process_index, world=self.config.world_size, ranks_here=self.peers.count,
                budget_bytes=int(self.data_args.pixel_cache_budget_gb * GIB) - used)
        return self._held_out

    def retention_baseline(self):
        """The pretrained CLIP's zero-shot accuracies, measured once per run (kept in output_dir for resumes);
        every rank takes the main process's reading of output_dir, so all measure or none."""
        saved = saved_baseline(self.output_dir, self.data_args.zero_shot_sets) if self.is_main_process else None
        self.retention_before = main_process_value(saved)
        if self.retention_before is None:
            self.retention_before = self.measure_retention(pretrained=True)
            if self.is_main_process:
                ckpt.write_json_atomic(self.output_dir / ZERO_SHOT_BEFORE_FILE, self.retention_before)

    def retention_results(self) -> dict:
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
        except OSError as error:  # an in-task checkpoint that could not be written: the older ones are intact
            raise ckpt.write_failure(trainer.args.output_dir, error, f"an in-task checkpoint of task {task}") from None
        except TrainingDivergedError as error:
            # Its checkpoints may hold non-finite weights: the task restarts from its beginning.
            if self.is_main_process:
                ckpt.remove_trainer_dir(self.output_dir, task)
            raise TrainingDivergedError(f"{error}; {diverged_advice(task, self.output_dir)}") from None

    def run_task(self, task: int):
        """Train task ``task``, score the accuracy round (and retention when due), save and push the task."""
        started = time.perf_counter()
        trainer = self.make_trainer(task)
        if self.state.switches.train:
            self.train_task(trainer, task)
        self.acc_matrix[task] = self.evaluate_row(trainer, task)
        last = task == self.data_args.num_tasks - 1
        retention_now = None
        if self.data_args.zero_shot_sets and (last or self.data_args.zero_shot_every_task):
            self.retention_after = retention_now = self.measure_retention(pretrained=False)
        metrics = self.metrics_so_far(task)
        self.record_timing(task, trainer, started)
        # The task's last point on the run's step axis (one step on for a task without training).
        self.step_offset += max(trainer.state.global_step, 1)
        self.trackers.log(tracker_metrics(task, metrics, self.acc_matrix[task], retention_now, self.timing[task]),
                          self.step_offset)
        if trainer.is_world_process_zero():
            say(task_summary(task, self.data_args.num_tasks, self.scenario.seen_end(task), metrics,
                             self.timing[task]["total_s"], retention_now))
            self.save_task(task, metrics)
        self.wait_for_everyone()
        return metrics

    def record_timing(self, task: int, trainer, started: float):
        raw = {**self.state.timing, "total_s": time.perf_counter() - started}
        images = round(len(self.state.train_dataset) * (trainer.state.epoch or 0)) if self.state.switches.train else 0
        self.timing[task] = task_timing(raw, images, self.eval_images)

    def save_task(self, task: int, metrics: dict):
        """Main process: task-k (adapter, prototypes, classes, settings, metrics), results.json, the model card,
        then the push (which never raises: failures are queued and reported)."""
        payload = {"task": task, "acc_row": self.acc_matrix[task], "test_sizes": self.test_sizes, "metrics": metrics,
                   "timing": self.timing[task], "global_step_end": self.step_offset, **self.retention_results()}
        if self.retention_after is not None:
            payload["zero_shot_after"] = self.retention_after
        if self.data_args.eval_task_incremental:
            payload["acc_row_til"] = self.til_matrix[task]
        classes = task_classes(self.scenario, task, self.data_args.num_tasks, self.template)
        ckpt.save_task(self.output_dir, task, self.model, self.state.prototypes, classes, self.run_config, payload,
                       self.variant and self.variant.state)  # a failed write: OutputWriteError, task-k not there
        try:
            self.write_results(task)
            write_task_card(self.output_dir, task, hub_repo_id(self.config))
        except OSError as error:  # task-k is saved: a rerun rewrites these
            raise ckpt.write_failure(self.output_dir, error, "results.json and the model card") from None
        ckpt.remove_trainer_dir(self.output_dir, task)  # superseded by task-k
        if self.pusher is not None:
            self.pusher.push(self.output_dir, task)

    def write_results(self, task: int) -> dict:
        results = {
            "variant": self.config.variant,
            "benchmark": self.data_args.benchmark,
            "tasks_completed": task + 1,
            "num_tasks": self.data_args.num_tasks,
            "acc_matrix": self.acc_matrix,
            "test_sizes": self.test_sizes,
            **self.metrics_so_far(task),
            "metrics_continuum": self.metrics_so_far(task, convention="continuum"),
            **self.retention_results(),
            "timing": self.timing,
            "zero_shot_seconds": self.retention_seconds or None,
        }
        if self.data_args.eval_task_incremental:
            results["acc_matrix_til"] = self.til_matrix
        return write_results(self.output_dir, results, self.config.variant, self.acc_matrix, self.test_sizes)

    def check_output_dir(self):
        ckpt.check_writable(self.output_dir)

    def start_pusher(self):
        """Main process, before any training: check the Hub credentials when pushing is requested."""
        self.pusher = pusher_from_config(self.config)
        if self.pusher is not None:
            user = self.pusher.check_credentials()
            logger.info("Pushing every task to %s as %s", self.pusher.repo_id, user)

    def run(self) -> dict:
        """Every task still to run; SIGTERM / SIGINT stop it where nothing is lost (``RunStopped``). The pixel
        stores go with the run (their files too)."""
        try:
            with stop_requests() as self.stop:
                return self.run_tasks()
        finally:
            self.scenario.close_cache()
            if self._held_out is not None:
                self._held_out.close()
                self._held_out = None

    def stop_if_requested(self, where: str):
        """A point between tasks where a stop signal (agreed by every rank) ends the run."""
        self.stop.stop_here(where, self.config.world_size, self.config.device)

    def run_tasks(self) -> dict:
        if self.is_main_process:
            self.check_output_dir()
            self.start_pusher()
        self.wait_for_everyone()
        first = self.resume()
        if self.pusher is not None:
            self.pusher.queue_unrecorded(self.output_dir, first)  # pushed with the next task (or at the end)
        if self.data_args.zero_shot_sets:  # every rank: each scores its shard
            self.retention_baseline()
            if first == self.data_args.num_tasks and main_process_value(self.retention_after) is None:
                self.retention_after = self.measure_retention(pretrained=False)  # a finished run saved without it
        for task in range(first, self.data_args.num_tasks):
            logger.info("Task %d/%d: classes %s", task + 1, self.data_args.num_tasks, self.scenario.bounds[task])
            self.stop_if_requested(f"before task {task} ({task} of {self.data_args.num_tasks} tasks saved)")
            self.run_task(task)
            self.stop_if_requested(f"after task {task} (saved in {ckpt.task_dir(self.output_dir, task)})")
        last = self.data_args.num_tasks - 1
        if not self.is_main_process:
            self.wait_for_everyone()
            return ckpt.nan_to_none({"acc_matrix": self.acc_matrix, **self.metrics_so_far(last)})
        results = ckpt.nan_to_none(self.write_results(last))
        self.finish(results)
        self.wait_for_everyone()
        return results

    def finish(self, results: dict):
        """Main process, after the last task: the trackers' pictures, the printed summary, the last push tries."""
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


def run_continual(model_args, data_args, config, benchmark: LoadedBenchmark | None = None,
                  allow_changed_settings: bool = False) -> dict:
    """Run (or resume) the task sequence; output_dir is locked for it, before any model or data is loaded."""
    with output_dir_lock(config):
        return ContinualRunner(model_args, data_args, config, benchmark, allow_changed_settings).run()
