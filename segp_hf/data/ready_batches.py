"""Whole batches from a cached split: the DataLoader gets each batch's uint8 pixels in one gather instead of
row by row, and the collators pass such a ready batch on as it is."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)

# How long a rank waits for the other ranks of its machine to decode their share of a split, counted from the
# last slot any of them filled: ranks reach the same split within seconds (they train in lockstep), so this
# only runs out when a peer is not decoding that split at all.
PEER_PATIENCE_S = 60.0


class ReadyBatch(Sequence):
    """A batch a dataset assembled itself (``CachedSplit.__getitems__``). ``ReadyBatchCollator`` hands on
    ``.batch`` as it is; any other collator sees a sequence of rows (views into the batch), so a plain
    ``DataLoader(..., collate_fn=default_data_collator)`` still gets the same tensors, only with a copy more."""

    def __init__(self, batch: dict):
        self.batch = batch

    def __len__(self) -> int:
        return len(next(iter(self.batch.values())))

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return {key: value[i] for key, value in self.batch.items()}


class ReadyBatchCollator:
    """Collator for loaders over cached and uncached sets alike: a ``ReadyBatch`` passes through as its dict,
    a list of rows goes to ``inner`` (e.g. ``default_data_collator``)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, features):
        if isinstance(features, ReadyBatch):
            return features.batch
        return self.inner(features)


class _Filler(torch.utils.data.Dataset):
    """Item i: fill chunk i of the missing slots (in a DataLoader worker), return its size."""

    def __init__(self, transform, chunks: list):  # transform: a pixel_cache.CachedImageLabelTransform
        self.transform, self.chunks = transform, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i) -> int:
        self.transform.fill(self.chunks[i])
        return len(self.chunks[i])


def loader_workers(dataset, workers: int) -> int:
    """DataLoader workers to read ``dataset`` with. A cached split is first filled (``prefill``: its missing
    images decoded by ``workers`` processes), then read in this process: gathering a batch from the store runs
    at ~20k images/s on one core, while handing a 19 MB uint8 batch from a worker to this process costs more
    than that (benchmarks/data_pipeline.py). Any other dataset keeps ``workers``."""
    if isinstance(dataset, CachedSplit):
        dataset.prefill(workers)
        return 0
    return workers


def ready_batches(collator):
    """``collator`` wrapped so that ready batches pass through (idempotent)."""
    return collator if isinstance(collator, ReadyBatchCollator) else ReadyBatchCollator(collator)


class CachedSplit(torch.utils.data.Dataset):
    """A cached task split that hands the DataLoader whole batches.

    ``datasets.Dataset.__getitems__`` reads a batch through the transform, splits it into rows, and the
    collator stacks the rows again: a second full copy of every batch's pixels. Here ``__getitems__`` (what a
    DataLoader calls with a batch's indices) gathers the batch's uint8 pixels from the store once and returns
    it whole, with labels from arrays kept in memory (the Arrow table is not touched). Row access and the
    rest of the ``datasets`` API (``ds[i]``, ``ds[:k]``, ``column_names``...) go to the transformed dataset, so
    both paths give the same tensors. ``ready_batches(collator)`` passes the whole batch on (the Trainer's and
    the callbacks' loaders use it); another collator gets the rows."""

    def __init__(self, subset, transform, slots: np.ndarray, labels: np.ndarray,
                 sample_index: np.ndarray | None = None):
        # subset: without the transform (select() works on it); transform: a pixel_cache.CachedImageLabelTransform
        self.subset, self.transform = subset, transform
        self.dataset = subset.with_transform(transform)
        self.slots = np.asarray(slots, dtype=np.int64)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.sample_index = None if sample_index is None else torch.as_tensor(np.asarray(sample_index), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.slots)

    def __getitem__(self, key):
        return self.dataset[key]

    def __getitems__(self, indices) -> ReadyBatch:
        index = np.asarray(indices, dtype=np.int64)
        batch = {"pixel_values": self.transform.read(self.slots[index]), "labels": self.labels[index]}
        if self.sample_index is not None:
            batch["sample_index"] = self.sample_index[index]
        return ReadyBatch(batch)

    def prefill(self, workers: int = 0, chunk: int = 64, patience_s: float = PEER_PATIENCE_S):
        """Decode every image of this split not in the store yet, with ``workers`` processes writing into the
        shared store (in this process when the store is private or ``workers`` is 0). Each worker returns only
        a count: pixels never travel between processes. A store shared by the ranks of a machine: this rank
        decodes its share, then waits for the others' (decoding itself what no peer filled within
        ``patience_s`` of the last progress)."""
        store = self.transform.store
        missing = np.unique(self.slots[~store.filled.numpy()[self.slots]])
        if store.across_processes:
            mine = store.share(missing)
            self._fill(missing[mine], workers, chunk)
            missing = store.wait_for_peers(missing[~mine], patience_s)
            if len(missing):
                logger.warning("no other rank decoded %d images within %.0f s; decoding them in this one",
                               len(missing), patience_s)
            else:
                store.release_name()  # every peer has filled its share, so each has the files open
        self._fill(missing, workers, chunk)

    def _fill(self, missing: np.ndarray, workers: int, chunk: int):
        chunks = [missing[i:i + chunk] for i in range(0, len(missing), chunk)]
        if workers <= 0 or not self.transform.store.shared or len(chunks) < 2:
            for part in chunks:
                self.transform.fill(part)
            return
        filler = _Filler(self.transform, chunks)
        for _ in torch.utils.data.DataLoader(filler, batch_size=None, num_workers=min(workers, len(chunks))):
            pass

    def select(self, indices) -> CachedSplit:
        index = np.asarray(list(indices), dtype=np.int64)
        return CachedSplit(self.subset.select(index), self.transform, self.slots[index], self.labels.numpy()[index],
                           None if self.sample_index is None else self.sample_index.numpy()[index])

    def __getattr__(self, name):
        # everything else of the datasets API (column_names, features, ...); never during unpickling
        if name.startswith("__") or name in ("dataset", "subset", "transform", "slots", "labels", "sample_index"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
