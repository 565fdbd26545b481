"""segp_hf: SeGP-CL continual learning of CLIP on the HuggingFace stack.

The public API is the names below; each lives in one module and is imported from there on first use, so
``import segp_hf`` stays light (torch and transformers load only when a name is used)."""

__version__ = "0.1.0"

_HOMES = {
    "SeGPTrainer": "trainer",
    "SeGPConfig": "config",
    "ModelArguments": "config",
    "DataArguments": "config",
    "load_recipe": "recipe",
    "parse_config": "recipe",
    "run_continual": "run.continual",
    "load_task": "hub.inference",
    "LoadedTask": "hub.inference",
    "register_benchmark": "data.registry",
}
__all__ = list(_HOMES)


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'segp_hf' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
