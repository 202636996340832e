"""SimulatedLensDataset: the same stream for any number of DataLoader workers or ranks."""
import itertools

import pytest
import torch
from torch.utils.data import DataLoader

from lens_hf.simulation import SimulatedLensDataset, get_preset, simulate


@pytest.fixture(scope="module")
def preset():
    return get_preset("model_ii", image_size=16)


def _items(dataset):
    return {item["index"]: item for item in dataset}


def test_items_are_the_simulated_images_with_labels_and_metadata(preset):
    dataset = SimulatedLensDataset(preset, seed=4, length=10, chunk_size=3)
    items = list(dataset)
    assert [item["index"] for item in items] == list(range(10)) and len(dataset) == 10
    reference = simulate(preset, n=10, seed=4)
    for item in items:
        i = item["index"]
        assert item["pixel_values"].shape == (1, 16, 16) and item["pixel_values"].dtype == torch.float32
        assert torch.equal(item["pixel_values"], reference.images[i])
        assert item["labels"] == int(reference.labels[i])
        assert item["einstein_radius_arcsec"] == pytest.approx(0.8118, abs=1e-4)
        assert item["pixel_scale_arcsec"] == 0.101 and item["seed"] == 4
    assert all((item["log10_m_axion"] == item["log10_m_axion"]) == (item["labels"] == 0) for item in items)


def test_worker_count_does_not_change_the_stream(preset):
    single = DataLoader(SimulatedLensDataset(preset, seed=1, length=24, block_size=4), batch_size=4, num_workers=0)
    double = DataLoader(SimulatedLensDataset(preset, seed=1, length=24, block_size=4), batch_size=4, num_workers=2)
    batches_single, batches_double = list(single), list(double)
    assert len(batches_single) == len(batches_double) == 6
    for a, b in zip(batches_single, batches_double):  # block_size == batch_size: same batches, same order
        assert torch.equal(a["index"], b["index"])
        assert torch.equal(a["pixel_values"], b["pixel_values"])
        assert torch.equal(a["labels"], b["labels"])


def test_ranks_split_the_stream_without_overlap(preset):
    full = _items(SimulatedLensDataset(preset, seed=2, length=11))
    shards = [SimulatedLensDataset(preset, seed=2, length=11, rank=r, world_size=3, block_size=2) for r in range(3)]
    seen = {}
    for shard in shards:
        items = _items(shard)
        assert len(items) == len(shard)
        assert not set(items) & set(seen)
        seen.update(items)
    assert sorted(seen) == list(range(11))
    assert all(torch.equal(seen[i]["pixel_values"], full[i]["pixel_values"]) for i in range(11))


def test_endless_stream_and_sr_targets():
    sr = get_preset("sr_pairs", image_size=12, hr_image_size=24, hr_pixel_scale=0.025)
    items = list(itertools.islice(iter(SimulatedLensDataset(sr, seed=0)), 5))
    assert [item["index"] for item in items] == [0, 1, 2, 3, 4]
    assert items[0]["targets"].shape == (1, 24, 24)
    with pytest.raises(TypeError, match="endless"):
        len(SimulatedLensDataset(sr))
    pretrain = SimulatedLensDataset(get_preset("pretrain", image_size=16), length=3)
    assert "labels" not in next(iter(pretrain)) and "substructure_type" in next(iter(pretrain))


def test_bad_dataset_arguments(preset):
    with pytest.raises(ValueError, match="rank"):
        SimulatedLensDataset(preset, rank=2, world_size=2)
    with pytest.raises(ValueError, match="block_size"):
        SimulatedLensDataset(preset, block_size=0)
    with pytest.raises(ValueError, match="length"):
        SimulatedLensDataset(preset, length=-1)
    with pytest.raises(TypeError, match="seed"):
        SimulatedLensDataset(preset, seed="0")
    with pytest.raises(TypeError, match="preset"):
        SimulatedLensDataset("model_ii")
