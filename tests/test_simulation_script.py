"""scripts/simulate.py writes the real on-disk layouts, which lens_hf.data's readers accept."""
import importlib.util
import json
import sys

import numpy as np
import pytest

from lens_hf.data.layouts import find_lens_finding_npy, find_model_folders, find_sr_pairs
from lens_hf.data.readers import read_npy_image
from lens_hf.simulation import get_preset, simulate


@pytest.fixture(scope="module")
def script(repo_root):
    spec = importlib.util.spec_from_file_location("simulate_script", repo_root / "scripts" / "simulate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_model_layout_with_axion_mass_pairs_and_a_test_split(script, tmp_path):
    record = script.main(["--preset", "model_i", "--image_size", "24", "--num_images", "6", "--num_test_images", "3",
                          "--output_dir", str(tmp_path), "--seed", "5", "--disable_progress_bar", "true"])
    train, test = find_model_folders(tmp_path, "Model_I")
    assert sorted(p.name for p in train.iterdir()) == ["axion", "cdm", "no_sub"] and test is not None
    assert len(list(test.rglob("*.npy"))) == 3 and record["counts"] == {"train": 6, "test": 3}
    reference = simulate(get_preset("model_i", image_size=24), n=9, seed=5)
    pair = np.load(train / "axion" / "axion_sim_0000000.npy", allow_pickle=True)
    assert pair.dtype == object and pair.shape == (2,) and pair[0].dtype == np.int64 and pair[0].shape == (24, 24)
    assert np.log10(pair[1]) == pytest.approx(float(reference.metadata["log10_m_axion"][0]))
    assert np.array_equal(pair[0], reference.images[0, 0].numpy())
    loaded = read_npy_image(train / "axion" / "axion_sim_0000000.npy", expected_shape=(1, 24, 24))
    assert loaded.log10_mass == pytest.approx(float(reference.metadata["log10_m_axion"][0]))
    cdm = read_npy_image(test / "cdm" / "cdm_sim_0000007.npy")
    assert np.array_equal(cdm.image, reference.images[7].numpy())
    assert json.loads((tmp_path / "simulation.json").read_text())["preset"]["image_size"] == 24


def test_sr_lens_finding_and_pretrain_layouts(script, tmp_path):
    common = ["--num_images", "8", "--num_test_images", "4", "--disable_progress_bar", "true"]
    script.main(["--preset", "sr_pairs", "--output_dir", str(tmp_path / "sr"), *common,
                 "--preset_overrides", "image_size=10,hr_image_size=20,hr_pixel_scale=0.025"])
    pairs = find_sr_pairs(tmp_path / "sr" / "SR")
    assert len(pairs) == 8
    assert read_npy_image(pairs[0].path).image.shape == (1, 10, 10)
    assert read_npy_image(pairs[0].partner).image.shape == (1, 20, 20)
    script.main(["--preset", "lens_finding", "--image_size", "16", "--output_dir", str(tmp_path / "lf"), *common,
                 "--preset_overrides", "lens_fraction=0.5"])
    train, test = find_lens_finding_npy(tmp_path / "lf")
    assert len(train) == 8 and len(test) == 4 and {s.label for s in train} == {"lens", "nonlens"}
    assert read_npy_image(train[0].path).image.shape == (3, 16, 16)
    script.main(["--preset", "pretrain", "--image_size", "16", "--output_dir", str(tmp_path / "pt"), *common])
    files = sorted((tmp_path / "pt" / "pretrain").rglob("*.npy"))
    assert len(files) == 8 and {f.parent.name for f in files} <= {"axion", "cdm", "no_sub"}
    assert np.load(files[0]).shape == (16, 16) and np.load(files[0]).dtype == np.float64


def test_config_file_and_bad_arguments(script, tmp_path):
    config = tmp_path / "simulate.json"
    config.write_text(json.dumps({"preset": "model_iii", "num_images": 3, "image_size": 8,
                                  "output_dir": str(tmp_path / "out"), "disable_progress_bar": True}))
    script.main([str(config)])
    assert len(list((tmp_path / "out" / "Model_III").rglob("*.npy"))) == 3
    with pytest.raises(FileExistsError, match="overwrite"):
        script.main([str(config)])
    base = ["--output_dir", str(tmp_path / "new"), "--disable_progress_bar", "true"]
    with pytest.raises(ValueError, match="build_dataset"):
        script.main(["--format", "datasets", *base])
    with pytest.raises(ValueError, match="--format"):
        script.main(["--format", "hdf5", *base])
    with pytest.raises(ValueError, match="--preset_overrides: expected comma-separated key=value"):
        script.main(["--preset_overrides", "{not key value", *base])
    with pytest.raises(KeyError, match="available"):
        script.main(["--preset", "model_v", *base])
    with pytest.raises(ValueError, match="nothing to simulate"):
        script.main(["--num_images", "0", *base])
    with pytest.raises(TypeError, match="classes_typo"):
        script.main(["--preset_overrides", "classes_typo=1", *base])
