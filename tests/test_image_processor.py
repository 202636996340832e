"""LensImageProcessor: every input layout and dtype, normalisations, resize/crop, errors, save/load."""

import json
import math

import numpy as np
import pytest
import torch
from helpers import tiny_config
from PIL import Image
from transformers import AutoImageProcessor, pipeline

from lens_hf import LensImageProcessor, LensMAEForImageClassification

RNG = np.random.default_rng(0)


def test_layouts_give_the_same_pixel_values():
    image = RNG.random((40, 40)).astype(np.float32)
    processor = LensImageProcessor(size=40, normalization="none")
    expected = torch.from_numpy(image)[None, None]
    for variant in (image, image[None], image[..., None], [image], [image[None]], torch.from_numpy(image)):
        out = processor(variant, return_tensors="pt")["pixel_values"]
        assert out.dtype == torch.float32 and torch.equal(out, expected)
    batch = np.stack([image, image * 2])
    for variant, layout in ((batch, "none"), (list(batch), None), (batch[:, None], None), (batch[..., None], None)):
        out = processor(variant, return_tensors="pt", input_data_format=layout)["pixel_values"]
        assert out.shape == (2, 1, 40, 40) and torch.equal(out[1, 0], torch.from_numpy(image * 2))
    large = np.stack([image * k for k in range(1, 9)])  # (8, H, W): too many to be bands, so a batch
    assert torch.equal(processor(large, return_tensors="pt")["pixel_values"], torch.from_numpy(large)[:, None])


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
    with pytest.raises(ValueError, match="2 bands in the last axis but num_channels=3"):
        LensImageProcessor(num_channels=3)(np.ones((16, 16, 2)))
    with pytest.raises(ValueError, match="no axis of size num_channels=3"):
        LensImageProcessor(num_channels=3)(np.ones((16, 16, 8)))
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


def test_channel_last_and_few_leading_planes_are_never_guessed_as_batches():
    """(H, W, 3) used to become H strips of W x 3 pixels and (3, H, W) three images, silently."""
    processor = LensImageProcessor(size=16)
    rgb = RNG.random((64, 64, 3))
    for variant in (rgb, torch.from_numpy(rgb), [rgb], RNG.random((64, 64, 4))):
        with pytest.raises(ValueError, match=r"bands in the last axis but num_channels=1\. Reduce it to one band"):
            processor(variant)
    planes = RNG.random((3, 64, 64))
    with pytest.raises(ValueError, match=r"ambiguous for num_channels=1: 3 single-band images or one 3-band image\. "
                                         r"For a batch pass input_data_format='none'"):
        processor(planes)
    with pytest.raises(ValueError, match="3 bands in the first axis but num_channels=1"):
        processor([planes])
    with pytest.raises(ValueError, match=r"has 3 band\(s\), expected num_channels=1"):
        processor(planes, input_data_format="channels_first")
    assert processor(planes, input_data_format="none")["pixel_values"].shape == (3, 1, 16, 16)
    assert processor(RNG.random((64, 64, 3)), input_data_format="none")["pixel_values"].shape == (64, 1, 16, 16)
    with pytest.raises(ValueError, match="'none' is for \\(N, H, W\\) batches"):
        processor(planes[:, None], input_data_format="none")
    with pytest.raises(ValueError, match="input_data_format='none' means \\(H, W\\) images"):
        processor([planes[:1]], input_data_format="none")
    with pytest.raises(ValueError, match="'none' means single-band \\(N, H, W\\) images, but num_channels=3"):
        LensImageProcessor(num_channels=3)(planes, input_data_format="none")
    with pytest.raises(ValueError, match="input_data_format must be one of"):
        processor(planes, input_data_format="hwc")


def test_pil_images_have_a_known_layout():
    counts = (RNG.random((20, 20)) * 255).astype(np.uint8)
    processor = LensImageProcessor(size=20, normalization="none")
    expected = processor(counts, return_tensors="pt")["pixel_values"]
    grey = Image.fromarray(counts)
    for image in (grey, grey.convert("F"), grey.convert("I"), grey.convert("RGB"), [grey, grey.convert("RGB")]):
        out = processor(image, return_tensors="pt")["pixel_values"]
        assert torch.equal(out, expected.expand(len(image) if isinstance(image, list) else 1, -1, -1, -1))
    wide = Image.fromarray(counts.astype(np.uint16))  # mode "I;16"
    assert torch.equal(processor(wide, return_tensors="pt")["pixel_values"], expected)
    colour = Image.fromarray((RNG.random((20, 20, 3)) * 255).astype(np.uint8))
    for image in (colour, colour.convert("RGBA"), grey.convert("LA")):
        with pytest.raises(ValueError, match=rf"PIL image in mode '{image.mode}' with \d bands but num_channels=1; "
                                             r"convert it first, e\.g\. image\.convert\('L'\)"):
            processor(image)
    with pytest.raises(ValueError, match=r"palette image \(mode 'P'\); convert it first"):
        processor(colour.convert("P"))
    three = LensImageProcessor(size=20, num_channels=3, normalization="none")
    assert torch.equal(three(colour, return_tensors="pt")["pixel_values"][0],
                       torch.from_numpy(np.moveaxis(np.asarray(colour), -1, 0).astype(np.float32)))
    with pytest.raises(ValueError, match=r"one band\) but num_channels=3"):
        three(grey)


@pytest.mark.parametrize("field,value", [
    ("size", 0), ("size", -3), ("size", math.nan), ("size", 2.5), ("num_channels", 0), ("crop_size", 0),
    ("crop_size", -10), ("crop_size", math.inf), ("image_std", [math.nan]), ("image_std", [0.0]),
    ("image_mean", [math.inf]), ("image_mean", math.nan), ("image_mean", "bright"),
])
def test_settings_that_would_give_nan_are_refused_everywhere(tmp_path, field, value):
    good = dict(size=16, normalization="standardize", image_mean=[0.0], image_std=[1.0], crop_size=16)
    pattern = rf"LensImageProcessor: {field} must be"
    with pytest.raises(ValueError, match=pattern):
        LensImageProcessor(**{**good, field: value})
    LensImageProcessor(**good).save_pretrained(tmp_path)
    config_file = tmp_path / "preprocessor_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, field: value}))  # NaN/Infinity as Python's json writes them
    with pytest.raises(ValueError, match=pattern):
        AutoImageProcessor.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=pattern):
        LensImageProcessor(**good)(np.ones((16, 16)), **{field: value})


def test_statistics_checked_even_when_unused_crop_against_the_image_and_override_layout():
    with pytest.raises(ValueError, match="image_std must be finite"):
        LensImageProcessor(normalization="minmax", image_std=[math.nan])
    with pytest.raises(ValueError, match=r"crop_size=40 is larger than the image \(32x48\)"):
        LensImageProcessor(size=16)(np.ones((32, 48)), crop_size=40)
    two_bands = LensImageProcessor(size=16)(RNG.random((2, 20, 20)), num_channels=2)  # the override sets the layout
    assert two_bands["pixel_values"].shape == (1, 2, 16, 16)


def test_pipeline_refuses_rgb_for_a_one_band_model_and_layouts_agree():
    torch.manual_seed(0)
    labels = {0: "axion", 1: "cdm", 2: "no_sub"}
    model = LensMAEForImageClassification(tiny_config(num_labels=3, id2label=labels,
                                                      label2id={v: k for k, v in labels.items()})).eval()
    with torch.no_grad():
        model.classifier.weight.normal_()
    processor = LensImageProcessor(size=32)
    classify = pipeline("image-classification", model=model, image_processor=processor, function_to_apply="none")
    colour = Image.fromarray((RNG.random((48, 48, 3)) * 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"mode 'RGB' with 3 bands but num_channels=1; convert it first"):
        classify(colour)
    image = RNG.poisson(3.0, size=(48, 48)).astype(np.float32)
    with torch.no_grad():
        last = model(**processor(image[..., None], return_tensors="pt")).logits
        first = model(**processor(image[None], return_tensors="pt")).logits
    assert torch.equal(last, first)
    scores = {r["label"]: r["score"] for r in classify(image[..., None])}
    assert scores == {r["label"]: r["score"] for r in classify(image[None])}
    assert scores == pytest.approx({labels[i]: float(v) for i, v in enumerate(first[0])}, rel=1e-5)
    grey = colour.convert("L")  # pipeline makes it RGB with equal bands: still one band
    with torch.no_grad():
        expected = model(**processor(np.asarray(colour.convert("L")), return_tensors="pt")).logits[0]
    assert {r["label"]: r["score"] for r in classify(grey)} == pytest.approx(
        {labels[i]: float(v) for i, v in enumerate(expected)}, rel=1e-5)
