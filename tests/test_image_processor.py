"""LensImageProcessor: every input layout and dtype, normalisations, resize/crop, errors, save/load."""

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor

from lens_hf import LensImageProcessor

RNG = np.random.default_rng(0)


def test_layouts_give_the_same_pixel_values():
    image = RNG.random((40, 40)).astype(np.float32)
    processor = LensImageProcessor(size=40, normalization="none")
    expected = torch.from_numpy(image)[None, None]
    for variant in (image, image[None], image[..., None], [image], [image[None]], torch.from_numpy(image)):
        out = processor(variant, return_tensors="pt")["pixel_values"]
        assert out.dtype == torch.float32 and torch.equal(out, expected)
    batch = np.stack([image, image * 2])
    for variant in (batch, batch[:, None], batch[..., None]):
        out = processor(variant, return_tensors="pt")["pixel_values"]
        assert out.shape == (2, 1, 40, 40) and torch.equal(out[1, 0], torch.from_numpy(image * 2))


def test_three_band_layouts_and_explicit_format():
    cube = RNG.random((3, 24, 24)).astype(np.float32)
    processor = LensImageProcessor(size=24, num_channels=3, normalization="none")
    first = processor(cube, return_tensors="pt")["pixel_values"]
    last = processor(np.moveaxis(cube, 0, -1), return_tensors="pt")["pixel_values"]
    assert torch.equal(first, last) and first.shape == (1, 3, 24, 24)
    ambiguous = RNG.random((3, 8, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="ambiguous layout"):
        processor(ambiguous)
    assert processor(ambiguous, input_data_format="channels_first", size=8)["pixel_values"].shape == (1, 3, 8, 8)
    assert processor(ambiguous, input_data_format="channels_last", size=8)["pixel_values"].shape == (1, 3, 3, 8)[:2] + (8, 8)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int64, np.float64, np.float32])
def test_integer_and_float_inputs_minmax_to_unit_range(dtype):
    raw = (RNG.random((30, 30)) * 1000).astype(dtype)
    out = LensImageProcessor(size=30)(raw, return_tensors="pt")["pixel_values"][0, 0]
    assert out.dtype == torch.float32
    assert out.min() == 0.0 and out.max() == 1.0
    expected = (raw.astype(np.float64) - raw.min()) / (raw.max() - raw.min())
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)


def test_minmax_is_safe_on_constant_and_empty_images():
    out = LensImageProcessor(size=16)(np.full((16, 16), 7.0), return_tensors="pt")["pixel_values"]
    assert torch.equal(out, torch.zeros(1, 1, 16, 16))
    out = LensImageProcessor(size=16)(np.zeros((16, 16)), return_tensors="pt")["pixel_values"]
    assert torch.isfinite(out).all() and out.abs().sum() == 0


def test_minmax_is_per_image_and_per_band():
    batch = np.stack([np.linspace(0, 1, 64).reshape(8, 8), np.linspace(5, 100, 64).reshape(8, 8)])[:, None]
    out = LensImageProcessor(size=8)(batch, return_tensors="pt")["pixel_values"]
    assert torch.allclose(out[0], out[1], atol=1e-6)


def test_standardize_with_stored_statistics():
    data = RNG.normal(3.0, 2.0, size=(50, 2, 16, 16))
    processor = LensImageProcessor.from_statistics(data, size=16)
    assert processor.normalization == "standardize" and processor.num_channels == 2
    out = processor(data, return_tensors="pt")["pixel_values"].double()
    assert abs(out.mean().item()) < 1e-5 and abs(out.std().item() - 1.0) < 1e-3
    with pytest.raises(ValueError, match="needs image_mean and image_std"):
        LensImageProcessor(normalization="standardize")
    with pytest.raises(ValueError, match="image_std must be positive"):
        LensImageProcessor(normalization="standardize", image_mean=[0.0], image_std=[0.0])


def test_resize_and_centre_crop():
    image = np.zeros((150, 150), dtype=np.float32)
    image[70:80, 70:80] = 1.0
    out = LensImageProcessor(size=64)(image, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 1, 64, 64)
    assert out[0, 0, 30:34, 30:34].mean() > out[0, 0, :10, :10].mean()
    cropped = LensImageProcessor(size=50, crop_size=50, normalization="none")(image, return_tensors="pt")["pixel_values"]
    assert torch.equal(cropped[0, 0], torch.from_numpy(image[50:100, 50:100]))
    with pytest.raises(ValueError, match="crop_size=200 is larger than the image"):
        LensImageProcessor(size=64, crop_size=200)(image)
    mixed = LensImageProcessor(size=32)([np.ones((40, 40)), RNG.random((64, 64))], return_tensors="pt")["pixel_values"]
    assert mixed.shape == (2, 1, 32, 32)


def test_bad_inputs_name_the_problem():
    processor = LensImageProcessor(size=16)
    nan_image = np.ones((16, 16))
    nan_image[3, 3] = np.nan
    with pytest.raises(ValueError, match=r"Image 1 contains NaN or Inf"):
        processor([np.ones((16, 16)), nan_image])
    with pytest.raises(ValueError, match=r"expected 1 band\(s\) in axis 1"):
        processor(np.ones((2, 16, 16, 2)))
    with pytest.raises(ValueError, match="no axis of size num_channels=3"):
        LensImageProcessor(num_channels=3)(np.ones((16, 16, 2)))
    with pytest.raises(ValueError, match="must be 2-D or 3-D"):
        processor([np.ones(16)])
    with pytest.raises(ValueError, match="object array"):
        processor(np.array([np.ones((2, 2)), 1.0], dtype=object))
    with pytest.raises(ValueError, match="empty list"):
        processor([])
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['normalisation'\]"):
        processor(np.ones((16, 16)), normalisation="none")
    with pytest.raises(ValueError, match="normalization must be one of"):
        LensImageProcessor(normalization="log")


def test_save_load_round_trip(tmp_path):
    processor = LensImageProcessor(size=48, num_channels=2, normalization="standardize", image_mean=[1.0, 2.0],
                                   image_std=[3.0, 4.0], crop_size=100, resample="area")
    processor.save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is LensImageProcessor and loaded.to_dict() == processor.to_dict()
    batch = RNG.random((3, 2, 120, 120))
    assert torch.equal(processor(batch, return_tensors="pt")["pixel_values"], loaded(batch, return_tensors="pt")["pixel_values"])
    overridden = AutoImageProcessor.from_pretrained(tmp_path, size=24)
    assert overridden.size == 24
