"""segp_hf: SeGP-CL continual learning of CLIP on the HuggingFace stack."""

__version__ = "0.1.0"

__all__ = ["load_task", "LoadedTask"]


def __getattr__(name):
    # Lazy: ``import segp_hf`` stays light; torch/transformers load only when a task is loaded.
    if name in ("load_task", "LoadedTask"):
        from .hub import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'segp_hf' has no attribute {name!r}")
