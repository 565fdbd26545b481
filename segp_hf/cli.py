"""Command line: ``segp-hf train [--config RECIPE.yaml] [--output_dir DIR] [--any_setting VALUE ...]``.

Parsing only; the work is in ``continual.py``. User errors print one line and exit 2
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources

from .callbacks import TrainingDivergedError
from .config import RecipeError, known_keys, load_recipe, parse_config
from .data.scenario import DataError

USER_ERRORS = (RecipeError, DataError)


def default_recipe() -> str:
    """The recipe run when no --config is given: the offline shapes world."""
    return str(resources.files("segp_hf") / "recipes" / "shapes.yaml")


def _train(args, overrides):
    from .continual import run_continual

    recipe = load_recipe(args.config or default_recipe())
    model_args, data_args, config = parse_config(recipe, overrides)
    run_continual(model_args, data_args, config)


def _ablate(args, overrides):
    from .ablation import run_ablation
    from .config import VARIANTS

    recipe = load_recipe(args.config or default_recipe())
    variants = args.variants.split(",") if args.variants else VARIANTS
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise RecipeError(f"unknown variant(s) {unknown}; choose from: {', '.join(VARIANTS)}")
    if args.seeds < 1:
        raise RecipeError(f"--seeds must be >= 1, got {args.seeds}")
    run_ablation(recipe, overrides, args.seeds, args.output_dir, variants)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segp-hf", description="SeGP-CL continual learning of CLIP.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="run the continual task sequence of a recipe",
        description="Run every task of a recipe. Any recipe setting can be overridden as --key value. "
        f"Settings: {', '.join(known_keys())}.",
    )
    train.add_argument("--config", help="recipe YAML (default: the offline shapes recipe)")
    train.add_argument("--debug", action="store_true", help="show full tracebacks")
    train.set_defaults(handler=_train)
    ablate = commands.add_parser("ablate", help="run every variant over several seeds and tabulate")
    ablate.add_argument("--config", help="recipe YAML (default: the offline shapes recipe)")
    ablate.add_argument("--seeds", type=int, default=3, help="seeds per variant (0..N-1)")
    ablate.add_argument("--output_dir", default="outputs/ablation", help="where runs and tables go")
    ablate.add_argument("--variants", help="comma-separated subset of variants (default: all)")
    ablate.add_argument("--debug", action="store_true", help="show full tracebacks")
    ablate.set_defaults(handler=_ablate)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.handler(args, overrides)
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"segp-hf: error: {error}", file=sys.stderr)
        return 2
    except TrainingDivergedError as error:
        if args.debug:
            raise
        print(f"segp-hf: training stopped: {error}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
