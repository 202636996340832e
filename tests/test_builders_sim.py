"""deeplense_sim: the simulator as a builder; same seed -> same bytes, splits independent."""
import datasets
import numpy as np
import pytest

from lens_hf.data import card_for_builder, load_builder, prepare_builder
from lens_hf.data.export import export_builder
from lens_hf.simulation import get_preset, simulate

SIZES = dict(n_train=6, n_validation=3, n_test=3)


def images(dataset_dict, column="image"):
    return {split: ds.with_format("numpy")[:][column] for split, ds in dataset_dict.items()}


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = load_builder("deeplense_sim", "model_ii", cache_dir=tmp_path / "a", seed=5, **SIZES)
    b = load_builder("deeplense_sim", "model_ii", cache_dir=tmp_path / "b", seed=5, chunk_size=4, **SIZES)
    c = load_builder("deeplense_sim", "model_ii", cache_dir=tmp_path / "a", seed=6, **SIZES)
    for split in ("train", "validation", "test"):
        assert images(a)[split].tobytes() == images(b)[split].tobytes()
        assert not np.array_equal(images(a)[split], images(c)[split])
    # the three splits are independent streams: no image appears in two of them
    fingerprints = [image.tobytes() for split in images(a).values() for image in split]
    assert len(set(fingerprints)) == len(fingerprints) == 12


def test_rows_are_the_simulator_output_for_the_split_seed(tmp_path):
    builder = prepare_builder("deeplense_sim", "model_ii", cache_dir=tmp_path, seed=1, chunk_size=4, **SIZES)
    validation = builder.as_dataset()["validation"].with_format("numpy")[:]
    direct = simulate(get_preset("model_ii"), 3, builder.split_seed("validation"))
    np.testing.assert_array_equal(validation["image"], direct.images.numpy())
    np.testing.assert_array_equal(validation["label"], direct.labels.numpy())
    np.testing.assert_array_equal(validation["log10_m_axion"], direct.metadata["log10_m_axion"].float().numpy())
    np.testing.assert_allclose(validation["einstein_radius_arcsec"], direct.metadata["einstein_radius_arcsec"].numpy(), rtol=1e-6)
    assert list(validation["uid"]) == [f"model_ii-seed1-validation-{i:07d}" for i in range(3)]
    features = builder.info.features
    assert features["image"] == datasets.Array3D((1, 64, 64), "float32")
    assert features["label"].names == ["axion", "cdm", "no_sub"]
    assert len({builder.split_seed(s) for s in ("train", "validation", "test")}) == 3


def test_regression_config_is_axion_only_with_finite_masses(tmp_path):
    ds = load_builder("deeplense_sim", "regression_model_iii", cache_dir=tmp_path, **SIZES)
    assert "label" not in ds["train"].features
    masses = np.concatenate([split.with_format("numpy")[:]["log10_m_axion"] for split in ds.values()])
    assert np.all((masses >= -24) & (masses <= -22))
    assert ds["train"].with_format("numpy")[0]["pixel_scale_arcsec"] == pytest.approx(0.08)


def test_sr_pairs_pretrain_and_lens_finding_schemas(tmp_path):
    small = dict(n_train=2, n_validation=0, n_test=1)
    sr = load_builder("deeplense_sim", "sr_pairs", cache_dir=tmp_path, **small)
    assert set(sr) == {"train", "test"}
    assert sr["train"].features["lr"] == datasets.Array3D((1, 75, 75), "float32")
    assert sr["train"].features["hr"] == datasets.Array3D((1, 150, 150), "float32")
    assert "label" not in sr["train"].features and "image" not in sr["train"].features
    pretrain = load_builder("deeplense_sim", "pretrain", cache_dir=tmp_path, **small)
    assert "label" not in pretrain["train"].features
    finding = load_builder("deeplense_sim", "lens_finding", cache_dir=tmp_path, **small)
    assert finding["train"].features["image"] == datasets.Array3D((3, 64, 64), "float32")
    assert finding["train"].features["label"].names == ["nonlens", "lens"]


def test_preset_overrides_reach_the_simulator(tmp_path):
    ds = load_builder("deeplense_sim", "model_ii", cache_dir=tmp_path, preset_overrides={"image_size": 32}, **SIZES)
    assert ds["train"].features["image"] == datasets.Array3D((1, 32, 32), "float32")
    assert ds["train"].with_format("numpy")[0]["image"].shape == (1, 32, 32)


def test_simulated_export_round_trip(tmp_path):
    builder = prepare_builder("deeplense_sim", "model_ii", cache_dir=tmp_path / "c", **SIZES)
    export_builder(builder, tmp_path / "out")
    back = datasets.load_dataset(str(tmp_path / "out"))
    for split, expected in images(builder.as_dataset()).items():
        np.testing.assert_array_equal(back[split].with_format("numpy")[:]["image"], expected)
    assert back["train"].features == builder.info.features


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_train=-1), ValueError, "n_train must be an int >= 0, got -1"),
        (dict(n_train=0, n_validation=0, n_test=0), ValueError, "nothing to simulate"),
        (dict(chunk_size=0), ValueError, "chunk_size must be an int >= 1"),
        (dict(preset_overrides={"image_sise": 32}), TypeError, r"preset 'model_ii' has no field\(s\) \['image_sise'\]"),
        (dict(preset_overrides={"pixel_scale": -1.0}), ValueError, "pixel_scale: must be > 0"),
    ],
)
def test_bad_sim_options_are_explained(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        load_builder("deeplense_sim", "model_ii", cache_dir=tmp_path, **kwargs)


def test_options_without_effect_on_the_simulator_are_refused_and_left_out_of_the_card(tmp_path):
    with pytest.raises(ValueError, match="validation_fraction has no effect on config 'model_ii'"):
        load_builder("deeplense_sim", "model_ii", cache_dir=tmp_path, validation_fraction=0.3, **SIZES)
    builder = prepare_builder("deeplense_sim", "model_ii", cache_dir=tmp_path, **SIZES)
    provenance = card_for_builder(builder).provenance
    assert "validation_fraction" not in provenance and provenance["n_train"] == 6 and provenance["preset"] == "model_ii"
