"""A torch IterableDataset that simulates images on the fly.

Image i of the stream is always the same (it depends only on preset, seed and i). Workers
and ranks split the stream into blocks of `block_size` consecutive indices dealt round-robin,
so with block_size equal to the DataLoader batch size the batches come out in exactly the
order a single process would produce, whatever num_workers is: batch m of rank r is block
m * world_size + r (the workers of a rank take its blocks in turn, as the DataLoader asks them).

`start` skips the first images (the dataset's `state_dict()` / `load_state_dict()`): a training
run that has consumed n images resumes on the stream that starts at image n, so the images a
resumed run trains on are exactly those of the uninterrupted run.
"""
from __future__ import annotations

import itertools
from typing import Iterator, Optional

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .engine import PER_IMAGE_KEYS, _render_batch
from .presets import SimulationPreset
from .rng import check_seed

# Per-image metadata copied into each item as Python floats (plus "index" and "seed").
ITEM_METADATA_KEYS = PER_IMAGE_KEYS + ("substructure_type",)


class SimulatedLensDataset(IterableDataset):
    """Streams {"pixel_values", "labels", "index", <scalar metadata>} dicts from a preset.

    Args:
        preset: a SimulationPreset (get_preset(name, ...)).
        seed: base seed of the stream.
        length: number of images (None: endless).
        rank, world_size: this process's share when the dataset itself must shard across
            processes (leave at 0 / 1 when accelerate dispatches batches from one process).
        block_size: consecutive indices a worker or rank takes at a time; set it to the
            DataLoader batch size to keep the single-process batch order.
        chunk_size: images rendered together inside a worker.
        dtype: compute dtype (images are returned as float32).
        start: the first index of the stream (the images before it were consumed already); `length`
            still counts from index 0, so the stream holds indices start .. length - 1.
    """

    def __init__(self, preset: SimulationPreset, seed: int = 0, length: Optional[int] = None, *,
                 rank: int = 0, world_size: int = 1, block_size: int = 1, chunk_size: int = 64,
                 dtype: torch.dtype = torch.float32, start: int = 0):
        super().__init__()
        if not isinstance(preset, SimulationPreset):
            raise TypeError(f"expected a simulation preset (get_preset(name)), got {type(preset).__name__}")
        preset.validate()
        check_seed(seed)
        for name, value, minimum in (("world_size", world_size, 1), ("block_size", block_size, 1),
                                     ("chunk_size", chunk_size, 1), ("rank", rank, 0), ("start", start, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"SimulatedLensDataset: {name} must be an int >= {minimum}, got {value!r}")
        if rank >= world_size:
            raise ValueError(f"SimulatedLensDataset: rank {rank} must be < world_size {world_size}")
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 0):
            raise ValueError(f"SimulatedLensDataset: length must be None or an int >= 0, got {length!r}")
        self.preset, self.seed, self.length = preset, seed, length
        self.rank, self.world_size = rank, world_size
        self.block_size, self.chunk_size, self.dtype = block_size, chunk_size, dtype
        self.start = start

    def state_dict(self) -> dict:
        """Where the stream starts (JSON-serialisable): `{"start": index}`."""
        return {"start": self.start}

    def load_state_dict(self, state: dict) -> None:
        """Start the stream at `state["start"]` (from `state_dict()`, e.g. of a checkpoint); iterators created
        afterwards begin there."""
        if not isinstance(state, dict) or set(state) != {"start"}:
            raise ValueError(f"SimulatedLensDataset.load_state_dict expects {{'start': int}}, got {state!r}")
        start = state["start"]
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"SimulatedLensDataset: start must be an int >= 0, got {start!r}")
        self.start = start

    def _shard(self) -> tuple:
        """(shard, shards) of this worker: worker w of rank r takes every (workers * world_size)-th block from
        w * world_size + r, so the blocks a rank yields, in the order the DataLoader takes its workers' batches,
        are r, r + world_size, r + 2 world_size, ... whatever the number of workers."""
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        return worker * self.world_size + self.rank, self.world_size * workers

    def _indices(self, shard: int, shards: int) -> Iterator[int]:
        for block in itertools.count(shard, shards):
            first = self.start + block * self.block_size
            if self.length is not None and first >= self.length:
                return
            last = first + self.block_size if self.length is None else min(first + self.block_size, self.length)
            yield from range(first, last)

    def __len__(self) -> int:
        """Images this rank yields (all its workers together)."""
        if self.length is None:
            raise TypeError("an endless SimulatedLensDataset (length=None) has no len()")
        return sum(1 for _ in self._rank_indices())

    def _rank_indices(self) -> Iterator[int]:
        shards = self.world_size
        return self._indices(self.rank, shards)

    def __iter__(self):
        shard, shards = self._shard()
        indices = self._indices(shard, shards)
        while True:
            chunk = list(itertools.islice(indices, self.chunk_size))
            if not chunk:
                return
            yield from self._render(torch.tensor(chunk, dtype=torch.int64))

    def _render(self, indices: torch.Tensor):
        meta = self.preset.sample_parameters(self.seed, indices)
        images = _render_batch(self.preset, meta, self.dtype, target=False).to(torch.float32)
        targets = (_render_batch(self.preset, meta, self.dtype, target=True).to(torch.float32)
                   if self.preset.has_targets else None)
        scalars = {key: meta[key].tolist() for key in ITEM_METADATA_KEYS if key in meta}
        for row in range(indices.numel()):
            item = {"pixel_values": images[row], "index": int(indices[row]), "seed": self.seed}
            if self.preset.labelled:
                item["labels"] = int(meta["label"][row])
            if targets is not None:
                item["targets"] = targets[row]
            item.update({key: values[row] for key, values in scalars.items()})
            yield item
