"""The plan check (``segp-hf train --config R --dry_run``): load the benchmark, split it into tasks and
print, per task, the classes, the train/test image counts and example prompts. No model is built or
downloaded and nothing is trained, so data problems (unreachable dataset, wrong columns, bad class
order, empty task) show up before a GPU is booked."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ..data.registry import load_benchmark
from ..data.scenario import prompts_for, scenario_for
from ..data.spec import LoadedBenchmark


@dataclass
class TaskPlan:
    task: int
    class_ids: list[int]  # native label ids
    class_names: list[str]
    num_train: int
    num_test: int
    prompts: list[str]


@dataclass
class Plan:
    benchmark: str
    template: str
    class_order: list[int]
    tasks: list[TaskPlan]
    info: dict

    @property
    def num_train(self) -> int:
        return sum(t.num_train for t in self.tasks)

    @property
    def num_test(self) -> int:
        return sum(t.num_test for t in self.tasks)


def build_plan(data_args, benchmark: LoadedBenchmark | None = None) -> Plan:
    """The task plan of a run's data settings (``benchmark`` replaces the registry, for tests)."""
    benchmark = benchmark or load_benchmark(data_args)
    template = data_args.prompt_template or benchmark.template
    scenario = scenario_for(benchmark, data_args, image_processor=None)  # the plan only selects rows
    tasks = []
    for task in range(data_args.num_tasks):
        ids = scenario.classes_of_task(task)
        names = [benchmark.class_names[c] for c in ids]
        tasks.append(TaskPlan(
            task=task, class_ids=list(ids), class_names=names,
            num_train=len(scenario.train_dataset(task)), num_test=len(scenario.test_dataset(task)),
            prompts=prompts_for(names, template),
        ))
    return Plan(data_args.benchmark, template, list(scenario.class_order), tasks, dict(benchmark.info))


def format_plan(plan: Plan, max_names: int = 20, max_prompts: int = 2) -> str:
    lines = [f"benchmark {plan.benchmark}: {len(plan.class_order)} classes in {len(plan.tasks)} tasks, "
             f"{plan.num_train} train / {plan.num_test} test images"]
    lines += [f"  {key}: {value}" for key, value in plan.info.items()]
    lines.append(f"  prompt template: {plan.template!r}")
    for t in plan.tasks:
        shown = ", ".join(t.class_names[:max_names]) + (" ..." if len(t.class_names) > max_names else "")
        lines.append(f"task {t.task}: {len(t.class_ids)} classes, {t.num_train} train / {t.num_test} test images")
        lines.append(f"  classes: {shown}")
        lines.append(f"  prompts: {' | '.join(t.prompts[:max_prompts])}")
    return "\n".join(lines)


def transfer_lines(data_args) -> list[str]:
    """What a full run of the recipe downloads and stores, said before anything is fetched."""
    from ..data.fetching import hub_target
    from ..data.hub_sources import SOURCES, UNPINNED_REASON, estimate_transfer, format_bytes

    if data_args.data_dir:
        return [f"data: local copy at {data_args.data_dir}; nothing is downloaded"]
    estimate = estimate_transfer(data_args.benchmark)
    if estimate is None and data_args.dataset_name:  # benchmark custom from the Hub: no sizes known in advance
        revision = data_args.dataset_revision or "newest (not pinned: set --dataset_revision)"
        return [f"data: hub {data_args.dataset_name}@{revision}; its size is not known before it is fetched"]
    if estimate is None:
        return [f"data: {data_args.benchmark} is built locally; nothing is downloaded"]
    source, revision = hub_target(SOURCES[data_args.benchmark], data_args)  # what the loader will load
    pin = revision or f"newest (not pinned: {UNPINNED_REASON})"
    approx = estimate.approximate
    lines = [f"data: hub {source.dataset_id}@{pin}"
             + (" (gated: accept its terms on the Hub and log in)" if source.gated else ""),
             f"  a full run downloads {format_bytes(estimate.downloaded, approx)} and stores "
             f"{format_bytes(estimate.stored, approx)} (only the kept rows; '~': estimated, see docs/benchmarks.md)"]
    lines += [f"  split {split}: download {format_bytes(down, a)}, store {format_bytes(kept, a)}"
              for split, down, kept, a in estimate.lines]
    return lines


def zero_shot_lines(data_args) -> list[str]:
    """The revision each zero-shot set will be loaded at (``--zero_shot_revisions``, else its pin)."""
    from ..data.hub_sources import SOURCES
    from ..data.zero_shot_sets import parse_set_revisions

    revisions = parse_set_revisions(data_args.zero_shot_revisions)
    lines = []
    for name in data_args.zero_shot_sets:
        source = SOURCES.get(name)
        if data_args.zero_shot_data_dir or source is None:
            where = f"local copy under {data_args.zero_shot_data_dir}" if data_args.zero_shot_data_dir else "built locally"
            lines.append(f"  zero-shot {name}: {where}")
            continue
        revision = revisions.get(name) or source.revision or "newest (not pinned: set --zero_shot_revisions)"
        lines.append(f"  zero-shot {name}: hub {source.dataset_id}@{revision}")
    return lines


def dry_run(model_args, data_args, config, stream=None) -> Plan:
    """Print the task plan of a run without building a model or training."""
    stream = stream or sys.stdout
    for line in transfer_lines(data_args) + zero_shot_lines(data_args):  # before anything is fetched
        print(line, file=stream, flush=True)
    plan = build_plan(data_args)
    print(f"model {model_args.model_name_or_path} (not loaded), variant {config.variant}, "
          f"output_dir {config.output_dir}", file=stream)
    print(format_plan(plan), file=stream)
    print("plan check passed: every task has training and test images for each of its classes.", file=stream)
    return plan


def dry_run_overrides(overrides: list[str]) -> list[str]:
    """A paper recipe asks for bf16, which TrainingArguments refuses on a machine without a GPU; the
    plan check runs anywhere, so it parses the settings as if on CPU there."""
    import torch

    if torch.cuda.is_available() or any(arg.split("=", 1)[0] == "--use_cpu" for arg in overrides):
        return list(overrides)
    return [*overrides, "--use_cpu", "true"]
