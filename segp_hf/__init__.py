"""segp_hf: SeGP-CL continual learning of CLIP on the HuggingFace stack."""

__version__ = "0.1.0"
