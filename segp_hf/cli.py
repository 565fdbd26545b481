"""Command line: ``segp-hf train [--config RECIPE.yaml | NAME] [--output_dir DIR] [--any_setting VALUE ...]``
(``segp-hf recipes`` lists the shipped recipes' names).

Parsing only; the work is in ``run/continual.py``. User errors print one line and exit 2
(``--debug`` shows the traceback); every exit code is in ``errors.EXIT_CODES``.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import textwrap
from importlib import resources

from .data.spec import DataError
from .errors import OutputWriteError, PushIncompleteError, RecipeError, RunStopped, TrainingDivergedError
from .recipe import load_recipe, parse_config
from .validation import check_command

USER_ERRORS = (RecipeError, DataError)


def default_recipe() -> str:
    """The recipe run when no --config is given: the offline shapes world."""
    return str(resources.files("segp_hf") / "recipes" / "shapes.yaml")


def _train(args, overrides):
    from .run.continual import run_continual

    recipe = load_recipe(args.config or default_recipe())
    if args.dry_run:
        from .commands.plan import dry_run, dry_run_overrides

        dry_run(*parse_config(recipe, dry_run_overrides(overrides)))
        return
    if args.resume_from:
        _resume_from(args, overrides)
        return
    model_args, data_args, config = parse_config(recipe, overrides)
    run_continual(model_args, data_args, config)


def _resume_from(args, overrides):
    """Continue another run's sequence after its task k: its checkpoints 0..k are copied (or downloaded)
    into --output_dir, then the normal resume runs task k+1 on. Settings: --config, else the checkpoint's,
    with any --key value overrides: a branch may change settings (e.g. a lower learning rate after a
    diverged task), since it never overwrites the run it came from."""
    from .commands.eval_task import saved_settings
    from .hub.tasks import fetch_task_dirs, parse_checkpoint_ref
    from .run.continual import run_continual

    source, task = parse_checkpoint_ref(args.resume_from)
    if task is None:
        raise RecipeError(f"--resume_from needs a task: {args.resume_from}@task-K")
    recipe = load_recipe(args.config) if args.config else saved_settings(source, task)
    model_args, data_args, config = parse_config(recipe, overrides)
    if task + 1 >= data_args.num_tasks:
        raise RecipeError(f"{args.resume_from} is already the last task (num_tasks={data_args.num_tasks})")
    fetch_task_dirs(source, task, config.output_dir)
    run_continual(model_args, data_args, config, allow_changed_settings=True)


def _eval(args, overrides):
    import json

    from .commands.eval_task import evaluate_checkpoint

    recipe = load_recipe(args.config) if args.config else None
    result = evaluate_checkpoint(args.checkpoint, recipe, overrides)
    per_task = "  ".join(f"T{t}: {a:.1f}" for t, a in enumerate(result["acc_per_task"]))
    print(f"{args.checkpoint}: accuracy over the {result['classes_seen']} seen classes {result['accuracy']:.2f}%  ({per_task})")
    print(json.dumps(result))


def _push(args, overrides):
    from .hub.push import push_output_dir

    if overrides:
        raise RecipeError(f"unexpected arguments for push: {' '.join(overrides)}")
    pusher = push_output_dir(args.output_dir, args.repo_id, token=args.token, private=args.private or None,
                             retries=args.retries, backoff=args.backoff)
    uploaded = [f"task-{t}" for t in pusher.pushed if not pusher.held_already(t)]
    print(f"Pushed {', '.join(uploaded) or 'nothing new'} to {args.repo_id}")
    if pusher.skipped:
        print(f"Skipped (already on {args.repo_id}, unchanged): {', '.join(pusher.skipped)}")
    report = pusher.report(args.output_dir)
    if report:
        print(report, file=sys.stderr)
        raise PushIncompleteError(report)


def _ablate(args, overrides):
    from .commands.ablate import ABLATION_ORDER, run_ablation

    recipe = load_recipe(args.config or default_recipe())
    variants = args.variants.split(",") if args.variants else ABLATION_ORDER
    run_ablation(recipe, overrides, args.seeds, args.output_dir, variants, convention=args.metrics)


class _Commands:
    """Every subcommand gets ``--quiet`` / ``--debug`` (and so the same error handling in ``main``)."""

    def __init__(self, subparsers):
        self.subparsers = subparsers
        self.common = argparse.ArgumentParser(add_help=False)
        verbosity = self.common.add_mutually_exclusive_group()
        verbosity.add_argument("--quiet", action="store_true",
                               help="print only the final results and problems (no bars, no per-task lines)")
        verbosity.add_argument("--debug", action="store_true",
                               help="show full tracebacks and every log line (the Trainer's log dicts, library info)")

    def add_parser(self, name, **kwargs):
        # No conflict_handler="resolve": resolving a clash strips the option strings off the SHARED action,
        # which turns --debug into an always-true positional in every other command.
        return self.subparsers.add_parser(name, parents=[self.common], **kwargs)


def _diagnose(args, overrides):
    from .commands.diagnose import diagnose_run
    from .evaluation.drift import summary_table

    recipe = load_recipe(args.config) if args.config else None
    tasks = _task_list(args.tasks)
    result = diagnose_run(args.run_dir, args.output_dir, tasks, split=args.split, k=args.k,
                          confusion_threshold=args.confusion_threshold, recipe=recipe, overrides=overrides,
                          device=args.device, model_card=args.model_card)
    print(f"Drift of old classes, interface vs core ({args.split} split, k={result['k']}):")
    print(summary_table(result))
    print(f"Wrote {args.output_dir}/diagnostics.json and plots")


def _task_list(text):
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise RecipeError(f"--tasks must be comma-separated task numbers (e.g. 1,2,3), got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segp-hf", description="SeGP-CL continual learning of CLIP.")
    commands = _Commands(parser.add_subparsers(dest="command", required=True))
    for add_command in (_add_train, _add_eval, _add_push, _add_ablate, _add_diagnose, _add_report, _add_recipes):
        add_command(commands)
    return parser


def _add_train(commands):
    from .recipe import settings_epilog

    train = commands.add_parser(
        "train",
        help="run the continual task sequence of a recipe",
        description=textwrap.fill(
            "Run every task of a recipe (default: the offline shapes world). Any setting below, and any "
            "TrainingArguments field, can be set in the recipe or overridden here as --key value. The defaults "
            "shown are the library's; a recipe (--config) may set others.", width=100),
        epilog=settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", help="recipe YAML, or a shipped recipe's name (segp-hf recipes; default: the "
                       "offline shapes recipe)")
    train.add_argument(
        "--dry_run", action="store_true",
        help="plan check: load the data and print the task plan (classes, image counts, prompts); no model, no training",
    )
    train.add_argument(
        "--resume_from", metavar="REPO_OR_DIR@task-K",
        help="continue another run after its task K (a local output dir or a Hub repo; settings: its own "
        "unless --config is given)",
    )
    train.set_defaults(handler=_train)


def _add_eval(commands):
    evaluate = commands.add_parser(
        "eval", help="evaluate a task checkpoint on the seen classes' test images",
        description="Evaluate REPO_OR_DIR@task-K (local output dir or Hub repo, offline from the HF cache with "
        "HF_HUB_OFFLINE=1). Data settings: the checkpoint's, changed by --config or --key value.",
    )
    evaluate.add_argument("--checkpoint", required=True, metavar="REPO_OR_DIR@task-K")
    evaluate.add_argument("--config", help="recipe YAML whose settings override the checkpoint's")
    evaluate.set_defaults(handler=_eval)


def _add_push(commands):
    push = commands.add_parser("push", help="push every complete task of a local run to the Hub (task-k branches)")
    push.add_argument("output_dir")
    push.add_argument("repo_id")
    push.add_argument("--token", help="Hub token (default: the logged-in one / HF_TOKEN)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--retries", type=int, default=3, help="retries per failed call")
    push.add_argument("--backoff", type=float, default=2.0, help="seconds before the first retry (doubles)")
    push.set_defaults(handler=_push)


def _add_ablate(commands):
    ablate = commands.add_parser("ablate", help="run every variant over several seeds and tabulate")
    ablate.add_argument("--config", help="recipe YAML (default: the offline shapes recipe)")
    ablate.add_argument("--seeds", type=int, default=3, help="seeds per variant (0..N-1)")
    ablate.add_argument("--output_dir", default="outputs/ablation", help="where runs and tables go")
    ablate.add_argument("--variants", help="comma-separated subset of variants (default: all, the paper's ladder first)")
    ablate.add_argument("--metrics", choices=("textbook", "continuum"), default="textbook",
                        help="forgetting/BWT/FWT convention of the printed table (both are written)")
    ablate.set_defaults(handler=_ablate)


def _add_diagnose(commands):
    diagnose = commands.add_parser(
        "diagnose", help="measure where a run's semantic geometry drifted (interface vs core), task by task",
        description="Load every saved task of RUN_DIR (a run's output dir or a Hub repo) and measure, after each "
        "task, the text, cross-modal and visual drift of the old classes, split into interface and core. "
        "Data settings: the run's, changed by --config or --key value.",
    )
    diagnose.add_argument("run_dir", metavar="RUN_DIR")
    diagnose.add_argument("--output_dir", required=True, help="where diagnostics.json and the plots go")
    diagnose.add_argument("--tasks", help="comma-separated tasks to analyse (default: every saved task)")
    diagnose.add_argument("--split", default="text", help="interface by 'text' neighbours (default) or 'confusion'")
    diagnose.add_argument("--k", type=int, help="text neighbours per class (default: the run's tsgr_k)")
    diagnose.add_argument("--confusion_threshold", type=float, default=0.1,
                          help="with --split confusion: share of an old class's images taken by new classes")
    diagnose.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    diagnose.add_argument("--model_card", action="store_true",
                          help="also copy diagnostics.json into RUN_DIR, so its task model cards get a drift section")
    diagnose.add_argument("--config", help="recipe YAML whose settings override the run's")
    diagnose.set_defaults(handler=_diagnose)


def _add_report(commands):
    report = commands.add_parser(
        "report", help="one HTML page comparing finished runs (metrics, curves, heatmaps, differing settings)",
        description="Write OUTPUT_DIR/index.html, a self-contained page (figures embedded) comparing the runs.",
    )
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="output_dir of a run (with results.json)")
    report.add_argument("--output_dir", required=True, help="where index.html goes")
    report.set_defaults(handler=_report)


def _report(args, overrides):
    from .commands.report import write_report

    if overrides:
        raise RecipeError(f"unexpected arguments for report: {' '.join(overrides)}")
    print(write_report(args.run_dirs, args.output_dir))


def _add_recipes(commands):
    recipes = commands.add_parser(
        "recipes", help="list the recipes shipped in the package (use one by name: train --config NAME)",
        description="List the shipped recipes, one line each; any of them runs by name, from any folder: "
        "segp-hf train --config NAME (a file of that name in the current folder wins).",
    )
    recipes.set_defaults(handler=_recipes)


def _recipes(args, overrides):
    from .recipe import recipe_summary, shipped_recipes

    if overrides:
        raise RecipeError(f"unexpected arguments for recipes: {' '.join(overrides)}")
    shipped = shipped_recipes()
    width = max(map(len, shipped))
    for name, path in shipped.items():
        print(f"{name:<{width}}  {recipe_summary(path)}")


def stopped_message(stop: RunStopped, argv) -> str:
    """One line: which signal, where the run stopped, and the command that continues it (the same one)."""
    name = signal.Signals(stop.signum).name
    return f"segp-hf: stopped by {name} {stop.where}; to continue, run: segp-hf {shlex.join(argv)}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    debug = getattr(args, "debug", False)
    from .run.console import set_mode

    set_mode("quiet" if getattr(args, "quiet", False) else "debug" if debug else "normal")
    try:
        check_command(args.command, args)  # the command's own arguments, before any work
        args.handler(args, overrides)
    except USER_ERRORS as error:
        if debug:
            raise
        print(f"segp-hf: error: {error}", file=sys.stderr)
        return 2
    except PushIncompleteError:
        return 4
    except OutputWriteError as error:
        if debug:
            raise
        print(f"segp-hf: error: {error}", file=sys.stderr)
        return 5
    except RunStopped as stop:
        print(stopped_message(stop, argv), file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # Ctrl-C before a run caught it (loading): nothing new was saved
        print(f"segp-hf: stopped by SIGINT before anything was saved; to continue, run: segp-hf {shlex.join(argv)}",
              file=sys.stderr)
        return 128 + signal.SIGINT
    except TrainingDivergedError as error:
        if debug:
            raise
        print(f"segp-hf: training stopped: {error}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
