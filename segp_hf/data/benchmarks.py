"""The paper's benchmarks on HF ``datasets``: this module only gathers their names from where they live now
(kept for old imports; new code imports from the module that holds the name):

- ``data/protocol_assets.py``: the shipped protocol facts (``protocol``, RAPF's template, the ImageNet-R lists);
- ``data/hub_sources.py``: where each dataset lives on the Hub, fetching one split;
- ``data/fetching.py``: a benchmark's raw splits from ``data_dir`` or the Hub, their columns;
- ``data/labels.py``: Hub labels -> the field's native class ids;
- ``data/train_test_benchmarks.py``, ``data/imagenet_r.py``, ``data/ucf101.py``: each benchmark's loader;
- ``data/cards.py``: the README table's facts per benchmark;
- ``data/zero_shot_sets.py``: the zero-shot retention sets (scored by ``segp_hf/zero_shot.py``);
- ``data/registry.py``: every benchmark by name.
"""

# moved to the modules above; kept for old imports
from .benchmark_spec import BenchmarkSpec, LoadedBenchmark  # noqa: F401
from .cards import CARDS, BenchmarkCard  # noqa: F401
from .fetching import check_columns, fetch_splits, hub_target  # noqa: F401
from .hub_sources import (  # noqa: F401
    LABEL_ALIASES, SOURCES, HubSource, load_error_message, load_hub_split, read_columns, unreachable_message,
)
from .imagenet_r import (  # noqa: F401
    IMAGENET_R_SPLIT_MODES, IMAGENET_R_STRATIFIED_SEED, IMAGENET_R_TEST_FRACTION, imagenet_r_rapf_keys,
    load_imagenet_r, stratified_test_positions,
)
from .labels import NATIVE_LABEL, arrow_column, native_label_array, normalise_name, with_native_labels  # noqa: F401
from .protocol_assets import RAPF_TEMPLATE, imagenet_r_manifest, protocol, rapf_imagenet_r_split  # noqa: F401
from .registry import BENCHMARKS, register_benchmark  # noqa: F401
from .train_test_benchmarks import load_cifar100, load_cub200, load_imagenet_sub  # noqa: F401
from .ucf101 import UCF_CLIP_COLUMNS, load_ucf101, middle_frame_positions  # noqa: F401
from .zero_shot_sets import (  # noqa: F401
    ZERO_SHOT_SETS, ZeroShotSet, ZeroShotSpec, clip_imagenet_names, load_zero_shot_set,
)

__all__ = [
    "BENCHMARKS", "CARDS", "SOURCES", "ZERO_SHOT_SETS", "HubSource", "ZeroShotSet", "fetch_splits", "load_zero_shot_set",
    "normalise_name", "protocol", "clip_imagenet_names", "rapf_imagenet_r_split", "stratified_test_positions",
]
