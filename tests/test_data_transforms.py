"""D4 augmentation and processor normalisation applied on the fly with set_transform."""
import itertools

import datasets
import numpy as np
import pytest
import torch

from lens_hf import LensImageProcessor
from lens_hf.data.transforms import D4_ORDER, LensTrainingTransform, d4_transform, random_d4, with_training_transforms


def generic_image(shape=(1, 5, 5), seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def d4_index(reference, transformed):
    matches = [k for k in range(D4_ORDER) if np.array_equal(d4_transform(reference, k), transformed)]
    assert len(matches) == 1, "not exactly one D4 element maps the reference onto the result"
    return matches[0]


def test_d4_has_eight_distinct_elements_and_is_closed():
    image = generic_image()
    images = [d4_transform(image, k) for k in range(D4_ORDER)]
    assert len({im.tobytes() for im in images}) == D4_ORDER
    for a, b in itertools.product(range(D4_ORDER), repeat=2):
        d4_index(image, d4_transform(d4_transform(image, a), b))  # composition is again one of the eight
    assert np.array_equal(d4_transform(image, 0), image)
    with pytest.raises(ValueError, match=r"integer in \[0, 8\), got 8"):
        d4_transform(image, 8)


def test_random_d4_uses_all_elements_and_applies_the_same_one_to_paired_arrays():
    hr = np.random.default_rng(1).random((400, 1, 8, 8)).astype(np.float32)
    lr = hr.reshape(400, 1, 4, 2, 4, 2).mean(axis=(3, 5))  # 2x2 average pooling commutes with D4
    lr_out, hr_out = random_d4(lr, hr, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(hr_out.reshape(400, 1, 4, 2, 4, 2).mean(axis=(3, 5)), lr_out, rtol=1e-6)
    used = {d4_index(hr[i], hr_out[i]) for i in range(400)}
    assert used == set(range(D4_ORDER))
    again, _ = random_d4(lr, hr, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(again, lr_out)


def test_one_d4_for_tensors_and_arrays():
    """The training loop (torch tensors, a seeded generator) and set_transform users (numpy) get the same draws
    and the same elements, and the element numbering is rotation by 90 degrees * (k mod 4), then a flip."""
    images = np.random.default_rng(3).random((64, 1, 5, 5)).astype(np.float32)
    from_arrays = random_d4(images, generator=torch.Generator().manual_seed(5))[0]
    tensor = torch.from_numpy(images.copy())
    (from_tensor,) = random_d4(tensor, generator=torch.Generator().manual_seed(5))
    assert isinstance(from_arrays, np.ndarray) and isinstance(from_tensor, torch.Tensor)
    np.testing.assert_array_equal(from_arrays, from_tensor.numpy())
    assert torch.equal(tensor, torch.from_numpy(images))  # inputs untouched
    for k in range(D4_ORDER):
        expected = np.rot90(images[0], k % 4, axes=(-2, -1))
        expected = expected[..., ::-1] if k >= 4 else expected
        np.testing.assert_array_equal(d4_transform(images[0], k), expected)
        assert torch.equal(d4_transform(tensor[0], k), torch.from_numpy(np.ascontiguousarray(expected)))
    with pytest.raises(ValueError, match="at least one array"):
        random_d4()


@pytest.fixture
def small_dataset():
    rng = np.random.default_rng(2)
    features = datasets.Features(
        {
            "image": datasets.Array3D((1, 12, 12), "float32"),
            "label": datasets.ClassLabel(names=["axion", "cdm", "no_sub"]),
            "log10_m_axion": datasets.Value("float32"),
        }
    )
    data = {
        "image": (rng.random((10, 1, 12, 12)) * 300).astype(np.float32),
        "label": rng.integers(0, 3, 10),
        "log10_m_axion": rng.uniform(-24, -22, 10).astype(np.float32),
    }
    return datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(data, features=features), "validation": datasets.Dataset.from_dict(data, features=features)}
    )


def test_evaluation_transform_is_exactly_the_processor(small_dataset):
    processor = LensImageProcessor(size=12, normalization="minmax")
    view = with_training_transforms(small_dataset, processor)["validation"]
    batch = view[0:4]
    raw = small_dataset["validation"].with_format("numpy")[0:4]
    expected = processor(raw["image"], return_tensors="pt", input_data_format="channels_first")["pixel_values"]
    torch.testing.assert_close(batch["pixel_values"], expected)
    assert batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].tolist() == raw["label"].tolist()
    assert float(batch["pixel_values"].min()) == 0.0 and float(batch["pixel_values"].max()) == 1.0


def test_training_transform_is_a_d4_image_of_the_normalised_input(small_dataset):
    processor = LensImageProcessor(size=12, normalization="minmax")
    torch.manual_seed(0)
    train = with_training_transforms(small_dataset, processor)["train"]
    raw = small_dataset["train"].with_format("numpy")[:]["image"]
    plain = processor(raw, return_tensors="pt", input_data_format="channels_first")["pixel_values"].numpy()
    out = train[:]["pixel_values"].numpy()
    elements = [d4_index(plain[i], out[i]) for i in range(10)]
    assert any(k != 0 for k in elements)
    # nothing was written back: the source dataset still returns raw pixels
    np.testing.assert_array_equal(small_dataset["train"].with_format("numpy")[:]["image"], raw)


def test_dataloader_batches_and_regression_labels(small_dataset):
    processor = LensImageProcessor(size=16, normalization="minmax")
    view = with_training_transforms(small_dataset, processor, label_column="log10_m_axion")
    loader = torch.utils.data.DataLoader(view["train"], batch_size=4)
    batches = list(loader)
    assert [b["pixel_values"].shape for b in batches] == [(4, 1, 16, 16), (4, 1, 16, 16), (2, 1, 16, 16)]
    labels = torch.cat([b["labels"] for b in batches])
    assert labels.dtype == torch.float32
    torch.testing.assert_close(labels, torch.tensor(small_dataset["train"][:]["log10_m_axion"]))


def test_super_resolution_target_follows_the_input():
    rng = np.random.default_rng(3)
    hr = rng.random((6, 1, 8, 8)).astype(np.float32)
    lr = hr.reshape(6, 1, 4, 2, 4, 2).mean(axis=(3, 5))
    features = datasets.Features({"lr": datasets.Array3D((1, 4, 4), "float32"), "hr": datasets.Array3D((1, 8, 8), "float32")})
    ds = datasets.Dataset.from_dict({"lr": lr, "hr": hr}, features=features)
    view = with_training_transforms(ds, None, image_column="lr", target_column="hr")
    batch = view[:]
    pooled = batch["labels"].reshape(6, 1, 4, 2, 4, 2).mean(dim=(3, 5))
    torch.testing.assert_close(pooled, batch["pixel_values"])
    assert batch["labels"].shape == (6, 1, 8, 8)


def test_missing_image_column_is_named():
    transform = LensTrainingTransform(image_column="lr")
    with pytest.raises(KeyError, match="reads column 'lr'; the batch has \\['image'\\]"):
        transform({"image": [np.zeros((1, 2, 2))]})


def test_collate_on_numpy_format_equals_the_set_transform_path(small_dataset):
    processor = LensImageProcessor(size=12, normalization="minmax")
    transform = LensTrainingTransform(processor, augment=False)
    via_transform = next(iter(torch.utils.data.DataLoader(small_dataset["train"].with_transform(transform), batch_size=10)))
    via_collate = next(iter(torch.utils.data.DataLoader(
        small_dataset["train"].with_format("numpy"), batch_size=10, collate_fn=transform.collate
    )))
    torch.testing.assert_close(via_collate["pixel_values"], via_transform["pixel_values"])
    assert via_collate["labels"].tolist() == via_transform["labels"].tolist()
    assert via_collate["labels"].dtype == torch.int64


def _old_and_new(dataset, processor, **kwargs):
    """The list path datasets' own `with_transform` takes, and `with_training_transforms`' numpy path."""
    from lens_hf.data.transforms import NUMPY_TRANSFORM_FORMAT

    new = with_training_transforms(dataset, processor, **kwargs)
    assert new.format["type"] == NUMPY_TRANSFORM_FORMAT
    old = dataset.with_transform(LensTrainingTransform(processor, augment=True, **kwargs))
    assert old.format["type"] == "custom"
    return old, new


def _assert_same_batches(old, new, queries):
    for query in queries:
        torch.manual_seed(7)
        expected = old[query]
        torch.manual_seed(7)
        got = new[query]
        assert set(got) == set(expected)
        for key in expected:
            assert got[key].dtype == expected[key].dtype and torch.equal(got[key], expected[key]), (query, key)


@pytest.mark.parametrize("label_column", ["label", "log10_m_axion"])
def test_numpy_transform_path_gives_exactly_the_list_path_tensors(small_dataset, label_column):
    """with_training_transforms reads Arrow as numpy instead of Python lists: the same tensors, dtypes and D4
    draws, for rows, slices, index lists and shuffled DataLoader batches (with resizing, 12 -> 16 px)."""
    processor = LensImageProcessor(size=16, normalization="minmax")
    old, new = _old_and_new(small_dataset["train"], processor, label_column=label_column)
    _assert_same_batches(old, new, [0, slice(0, 4), [9, 2, 5, 5], slice(None)])
    for workers in (0, 2):
        batches = []
        for view in (old, new):
            torch.manual_seed(3)  # the DataLoader's base seed (workers' RNG) comes from the global RNG
            loader = torch.utils.data.DataLoader(view, batch_size=4, shuffle=True, num_workers=workers,
                                                 generator=torch.Generator().manual_seed(1))
            batches.append(list(loader))
        for a, b in zip(*batches, strict=True):
            assert all(torch.equal(a[key], b[key]) and a[key].dtype == b[key].dtype for key in a)


def test_numpy_transform_path_on_other_storage():
    """Images stored as float64, as integers, or as nested lists (a Sequence feature, as some Hub datasets store
    them), and SR pairs: the numpy path still gives the list path's tensors."""
    rng = np.random.default_rng(4)
    images = rng.random((6, 1, 8, 8)) * 1000
    processor = LensImageProcessor(size=8, normalization="minmax")
    stored = {
        "float64": datasets.Features({"image": datasets.Array3D((1, 8, 8), "float64")}),
        "int32": datasets.Features({"image": datasets.Array3D((1, 8, 8), "int32")}),
        "nested lists": datasets.Features({"image": datasets.Sequence(datasets.Sequence(datasets.Sequence(
            datasets.Value("float32"))))}),
    }
    for name, features in stored.items():
        values = images.astype(np.int32) if name == "int32" else images
        dataset = datasets.Dataset.from_dict({"image": values.tolist() if name == "nested lists" else values},
                                             features=features)
        old, new = _old_and_new(dataset, processor, label_column=None)
        _assert_same_batches(old, new, [slice(None), [3, 1]])
    hr = rng.random((6, 1, 8, 8)).astype(np.float32)
    features = datasets.Features({"lr": datasets.Array3D((1, 4, 4), "float32"), "hr": datasets.Array3D((1, 8, 8), "float32")})
    pairs = datasets.Dataset.from_dict({"lr": hr[:, :, ::2, ::2], "hr": hr}, features=features)
    old, new = _old_and_new(pairs, None, image_column="lr", target_column="hr")
    _assert_same_batches(old, new, [slice(None), 2])
