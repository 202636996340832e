"""Export to Parquet + README, `load_dataset(folder)`, and push to a local Hub server and back."""
import datasets
import numpy as np
import pytest
import yaml

from lens_hf.data import prepare_builder
from lens_hf.data.export import DatasetCardInfo, ExportError, export_builder, export_dataset, push_exported
from lens_hf.data.sample_layouts import (
    write_bologna_tree,
    write_class_folders,
    write_common_test_tree,
    write_deeplense_model_tree,
    write_lens_finding_tree,
    write_sr_tree,
)


def assert_same_rows(expected: datasets.DatasetDict, actual: datasets.DatasetDict):
    assert list(actual) == list(expected)
    for split in expected:
        assert actual[split].features == expected[split].features
        a = expected[split].with_format("numpy")[:]
        b = actual[split].with_format("numpy")[:]
        assert a.keys() == b.keys()
        for column in a:
            np.testing.assert_array_equal(a[column], b[column], err_msg=f"{split}/{column}")


def read_card_yaml(readme):
    return yaml.safe_load(readme.read_text().split("---")[1])


@pytest.fixture(scope="module")
def model_ii_builder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_deeplense_model_tree(root, "Model_II", image_size=16, n_per_class=6, n_test_per_class=2)
    np.save(root / "Model_II/cdm/broken.npy", np.full((16, 16), np.nan))
    return prepare_builder(
        "deeplense", "model_ii", data_dir=root, cache_dir=root / "cache", image_size=16, validation_fraction=0.3,
        skip_bad_files=True,
    )


def test_exported_builder_loads_back_with_array3d_features_and_equal_rows(model_ii_builder, tmp_path):
    readme = export_builder(model_ii_builder, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out/model_ii").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    back = datasets.load_dataset(str(tmp_path / "out"))
    assert back["train"].features["image"] == datasets.Array3D((1, 16, 16), "float32")
    assert back["train"].features["label"] == datasets.ClassLabel(names=["axion", "cdm", "no_sub"])
    assert_same_rows(model_ii_builder.as_dataset(), back)

    card = read_card_yaml(readme)
    assert card["configs"] == [
        {
            "config_name": "model_ii",
            "data_files": [{"split": s, "path": f"model_ii/{s}-*"} for s in ("train", "validation", "test")],
        }
    ]
    provenance = card["lens_hf"]["model_ii"]
    assert provenance["builder"] == "deeplense" and provenance["seed"] == 0 and provenance["image_size"] == 16
    assert provenance["code_hash"] == model_ii_builder.hash and provenance["skipped_files"] == 1
    text = readme.read_text()
    assert "broken.npy" in text and "1 bad input file(s) were skipped" in text
    assert "| `image` | Array3D float32 (1, 16, 16) |" in text


def test_second_config_is_added_and_reexport_replaces_old_shards(model_ii_builder, tmp_path):
    out = tmp_path / "out"
    full = model_ii_builder.as_dataset()
    export_dataset(full, out, config_name="model_ii", max_shard_size=2_000)
    assert len(list((out / "model_ii").glob("train-*.parquet"))) > 1
    sr_root = write_sr_tree(tmp_path / "sr", n_pairs=5, lr_size=4)
    sr = prepare_builder("lens_sr", data_dir=sr_root, cache_dir=tmp_path / "c", lr_size=4, hr_size=8).as_dataset()
    export_dataset(sr, out, config_name="sr", card=DatasetCardInfo(pretty_name="two configs"))  # added: no flag
    with pytest.raises(ExportError, match=r"out already holds an export of config 'model_ii'; pass "
                                          r"--overwrite_output_dir \(overwrite=True\) to replace it"):
        export_dataset(full, out, config_name="model_ii")  # never replaced without being told to
    export_dataset(full, out, config_name="model_ii", overwrite=True)  # one shard per split now: old shards must go
    assert len(list((out / "model_ii").glob("train-*.parquet"))) == 1
    assert_same_rows(full, datasets.load_dataset(str(out), "model_ii"))
    assert_same_rows(sr, datasets.load_dataset(str(out), "sr"))
    card = read_card_yaml(out / "README.md")
    assert [c["config_name"] for c in card["configs"]] == ["model_ii", "sr"]
    assert sorted(info["config_name"] for info in card["dataset_info"]) == ["model_ii", "sr"]


def test_single_dataset_is_exported_as_train_of_default_config(tmp_path):
    features = datasets.Features({"image": datasets.Array3D((2, 3, 4), "float32"), "uid": datasets.Value("string")})
    images = np.random.default_rng(0).random((5, 2, 3, 4)).astype(np.float32)
    ds = datasets.Dataset.from_dict({"image": images, "uid": list("abcde")}, features=features)
    export_dataset(ds, tmp_path / "one", card={"pretty_name": "one split", "description": "five rows"})
    back = datasets.load_dataset(str(tmp_path / "one"))
    np.testing.assert_array_equal(back["train"].with_format("numpy")[:]["image"], images)
    assert (tmp_path / "one/data/train-00000-of-00001.parquet").exists()


def test_transformed_dataset_exports_its_rows_not_the_transform(tmp_path):
    features = datasets.Features({"image": datasets.Array3D((1, 2, 2), "float32")})
    ds = datasets.Dataset.from_dict({"image": np.ones((3, 1, 2, 2), np.float32)}, features=features)
    export_dataset(ds.with_transform(lambda batch: {"other": [0] * len(batch["image"])}), tmp_path / "t")
    assert datasets.load_dataset(str(tmp_path / "t"))["train"].features == features


def test_splits_with_different_features_are_refused(tmp_path):
    a = datasets.Dataset.from_dict({"x": [1.0]})
    b = datasets.Dataset.from_dict({"y": [1.0]})
    with pytest.raises(ValueError, match="split 'test' has features .* every split of one config must share"):
        export_dataset(datasets.DatasetDict({"train": a, "test": b}), tmp_path / "bad")
    with pytest.raises(TypeError, match="non-empty Dataset or DatasetDict"):
        export_dataset(datasets.DatasetDict(), tmp_path / "bad")


def test_push_to_local_hub_and_load_back(model_ii_builder, tmp_path, local_hub):
    out = tmp_path / "out"
    expected = model_ii_builder.as_dataset()
    export_dataset(expected, out, config_name="model_ii", max_shard_size=2_000)
    push_exported(out, "lens-tester/deeplense-model-ii")
    # a smaller re-export must not leave the old shards in the repo (they would duplicate rows)
    export_builder(model_ii_builder, out, repo_id="lens-tester/deeplense-model-ii", overwrite=True)
    push_exported(out, "lens-tester/deeplense-model-ii")
    back = datasets.load_dataset("lens-tester/deeplense-model-ii", download_mode="force_redownload")
    assert_same_rows(expected, back)
    assert back["train"].features["image"] == datasets.Array3D((1, 16, 16), "float32")


def test_push_needs_an_exported_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no README.md; export it with lens_hf.data.export_dataset"):
        push_exported(tmp_path, "lens-tester/x")


def test_selected_and_shuffled_rows_are_exported_in_their_order(tmp_path):
    ds = datasets.Dataset.from_dict({"x": list(range(100))}).select([5, 3, 7, 9]).shuffle(seed=0)
    export_dataset(ds, tmp_path / "sel", max_shard_size=10)
    assert len(list((tmp_path / "sel/data").glob("train-*.parquet"))) > 1
    assert datasets.load_dataset(str(tmp_path / "sel"))["train"][:]["x"] == ds[:]["x"]


ROUND_TRIPS = {
    "model_i": ("deeplense", lambda root: write_deeplense_model_tree(root, "Model_I", image_size=150, n_per_class=3, n_test_per_class=1)),
    "regression_model_iii": ("deeplense", lambda root: write_deeplense_model_tree(root, "Model_III", n_per_class=4)),
    "common_test": ("deeplense", lambda root: write_common_test_tree(root, n_per_class=3)),
    "foundation": ("deeplense", lambda root: write_class_folders(root, ("axion", "cdm", "no_sub"), (64, 64), 4)),
    "default": ("lens_sr", lambda root: write_sr_tree(root, n_pairs=6)),
    "npy": ("lens_finding", lambda root: write_lens_finding_tree(root, n_per_folder=3)),
    "bologna": ("lens_finding", lambda root: write_bologna_tree(root, object_ids=range(7))),
}


@pytest.mark.parametrize("config", sorted(ROUND_TRIPS))
def test_every_real_builder_config_round_trips_through_export(config, tmp_path):
    name, write_tree = ROUND_TRIPS[config]
    builder = prepare_builder(name, config, data_dir=write_tree(tmp_path / "raw"), cache_dir=tmp_path / "cache",
                              validation_fraction=0.3)
    export_builder(builder, tmp_path / "out")
    expected = builder.as_dataset()
    assert sum(split.num_rows for split in expected.values()) > 0
    assert_same_rows(expected, datasets.load_dataset(str(tmp_path / "out")))
