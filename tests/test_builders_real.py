"""The real-data builders (deeplense, lens_sr, lens_finding) on small trees in the exact real layouts."""
import shutil

import datasets
import numpy as np
import pytest

from lens_hf.data import LensDataError, load_builder, prepare_builder
from lens_hf.data.loading import BUILDERS_DIR_ENV, builders_dir
from lens_hf.data.readers import read_fits_image
from lens_hf.data.sample_layouts import (
    save_axion_pair,
    write_bologna_tree,
    write_class_folders,
    write_common_test_tree,
    write_deeplense_model_tree,
    write_lens_finding_tree,
    write_sr_tree,
)


def numpy_rows(dataset):
    return dataset.with_format("numpy")[:]


def all_rows_by_uid(dataset_dict):
    """uid -> (split, row) over every split."""
    out = {}
    for split, ds in dataset_dict.items():
        rows = ds.with_format("numpy")
        for index in range(ds.num_rows):
            row = rows[index]
            out[str(row["uid"])] = (split, row)
    return out


@pytest.fixture
def model_ii_tree(tmp_path):
    """Model_II + Model_II_test with axion pickles, plain float64 (H,W), plus int16, (1,H,W) and (H,W,1) files."""
    root = write_deeplense_model_tree(tmp_path / "data", "Model_II", image_size=16, n_per_class=5, n_test_per_class=2)
    rng = np.random.default_rng(7)
    np.save(root / "Model_II/cdm/extra_int16.npy", rng.integers(-500, 500, (16, 16)).astype(np.int16))
    np.save(root / "Model_II/no_sub/extra_chw.npy", rng.random((1, 16, 16)).astype(np.float32))
    np.save(root / "Model_II/no_sub/extra_hwc.npy", rng.random((16, 16, 1)))
    return root


def test_deeplense_model_config_reads_every_file_with_labels_masses_and_splits(model_ii_tree, tmp_path):
    ds = load_builder(
        "deeplense", "model_ii", data_dir=model_ii_tree, cache_dir=tmp_path / "cache", image_size=16, validation_fraction=0.3
    )
    assert set(ds) == {"train", "validation", "test"}
    features = ds["train"].features
    assert features["image"] == datasets.Array3D((1, 16, 16), "float32")
    assert features["label"].names == ["axion", "cdm", "no_sub"]
    rows = all_rows_by_uid(ds)
    files = sorted(p for p in model_ii_tree.rglob("*.npy"))
    assert len(rows) == len(files) == 3 * 5 + 3 + 3 * 2
    for path in files:
        uid = path.relative_to(model_ii_tree).as_posix()
        split, row = rows[uid]
        assert (split == "test") == uid.startswith("Model_II_test/")
        class_name = path.parent.name
        assert features["label"].int2str(int(row["label"])) == class_name
        raw = np.load(path, allow_pickle=True)
        if class_name == "axion":
            image, mass = raw[0], raw[1]
            assert row["log10_m_axion"] == pytest.approx(np.log10(mass), abs=1e-5)
        else:
            image = raw
            assert np.isnan(row["log10_m_axion"])
        image = np.moveaxis(image, -1, 0) if image.shape[-1] == 1 else image.reshape(1, 16, 16)
        np.testing.assert_array_equal(row["image"], image.astype(np.float32))
        assert row["pixel_scale_arcsec"] == pytest.approx(0.101)
    # rows come out in sorted file order within a split
    train_uids = list(ds["train"][:]["uid"])
    assert train_uids == sorted(train_uids)


def test_deeplense_regression_config_is_axion_only_with_mass_target(model_ii_tree, tmp_path):
    ds = load_builder("deeplense", "regression_model_ii", data_dir=model_ii_tree, cache_dir=tmp_path / "c", image_size=16)
    assert "label" not in ds["train"].features
    uids = [u for split in ds.values() for u in split[:]["uid"]]
    assert len(uids) == 5 + 2 and all("/axion/" in u for u in uids)
    assert all(-24 <= m <= -22 for split in ds.values() for m in split[:]["log10_m_axion"])


def test_regression_refuses_axion_file_without_mass(model_ii_tree, tmp_path):
    np.save(model_ii_tree / "Model_II/axion/plain.npy", np.ones((16, 16)))
    with pytest.raises(LensDataError, match="axion/plain.npy: regression needs the axion mass"):
        load_builder("deeplense", "regression_model_ii", data_dir=model_ii_tree, cache_dir=tmp_path / "c", image_size=16)


def test_data_dir_may_be_the_model_folder_itself(model_ii_tree, tmp_path):
    a = load_builder("deeplense", "model_ii", data_dir=model_ii_tree, cache_dir=tmp_path / "a", image_size=16)
    b = load_builder("deeplense", "model_ii", data_dir=model_ii_tree / "Model_II", cache_dir=tmp_path / "b", image_size=16)
    assert {k: list(v[:]["uid"]) for k, v in a.items()} == {k: list(v[:]["uid"]) for k, v in b.items()}


def test_splits_do_not_depend_on_listing_order_and_are_stable_when_files_are_added(tmp_path):
    names = [f"img_{i:03d}.npy" for i in range(30)]
    first, second = tmp_path / "first", tmp_path / "second"
    for root, order in ((first, names), (second, names[::-1])):  # files created in opposite orders
        for class_name in ("axion", "cdm", "no_sub"):
            (root / class_name).mkdir(parents=True)
            for name in order:
                np.save(root / class_name / name, np.full((64, 64), float(len(name))))
    a = load_builder("deeplense", "foundation", data_dir=first, cache_dir=tmp_path / "c1", validation_fraction=0.2)
    b = load_builder("deeplense", "foundation", data_dir=second, cache_dir=tmp_path / "c2", validation_fraction=0.2)
    assert {k: list(v[:]["uid"]) for k, v in a.items()} == {k: list(v[:]["uid"]) for k, v in b.items()}
    assert set(a) == {"train", "validation", "test"}
    for class_name in ("axion", "cdm", "no_sub"):
        np.save(first / class_name / "img_new.npy", np.ones((64, 64)))
    c = load_builder("deeplense", "foundation", data_dir=first, cache_dir=tmp_path / "c1", validation_fraction=0.2)
    for split in a:
        assert set(a[split][:]["uid"]) <= set(c[split][:]["uid"])
    other_seed = load_builder("deeplense", "foundation", data_dir=first, cache_dir=tmp_path / "c1", seed=1)
    assert list(other_seed["validation"][:]["uid"]) != list(c["validation"][:]["uid"])


def test_common_test_set_val_folder_is_the_test_split(tmp_path):
    root = write_common_test_tree(tmp_path / "ct", n_per_class=3, image_size=150)
    ds = load_builder("deeplense", "common_test", data_dir=root, cache_dir=tmp_path / "c", validation_fraction=0.3)
    assert ds["train"].features["label"].names == ["no", "sphere", "vort"]
    assert sorted(ds["test"][:]["uid"]) == sorted(
        p.relative_to(root).as_posix() for p in (root / "dataset/val").rglob("*.npy")
    )
    assert ds["train"].num_rows + ds["validation"].num_rows == 9
    row = ds["test"].with_format("numpy")[0]
    np.testing.assert_array_equal(row["image"], np.load(root / row["uid"]).astype(np.float32))


def test_foundation_set_float64_plain_arrays(tmp_path):
    root = write_class_folders(tmp_path / "fm", ("axion", "cdm", "no_sub"), (64, 64), n_per_class=4)
    ds = load_builder("deeplense", "foundation", data_dir=root, cache_dir=tmp_path / "c")
    rows = all_rows_by_uid(ds)
    assert len(rows) == 12
    for uid, (_, row) in rows.items():
        np.testing.assert_array_equal(row["image"][0], np.load(root / uid).astype(np.float32))


def test_sr_pairs_keep_lr_and_hr_together(tmp_path):
    root = write_sr_tree(tmp_path / "sr", n_pairs=8, lr_size=12)
    ds = load_builder("lens_sr", data_dir=root, cache_dir=tmp_path / "c", lr_size=12, hr_size=24, validation_fraction=0.25)
    assert ds["train"].features["lr"] == datasets.Array3D((1, 12, 12), "float32")
    assert ds["train"].features["hr"] == datasets.Array3D((1, 24, 24), "float32")
    rows = all_rows_by_uid(ds)
    assert len(rows) == 8
    for uid, (_, row) in rows.items():
        np.testing.assert_array_equal(row["lr"], np.load(root / "LR" / uid))
        np.testing.assert_array_equal(row["hr"], np.load(root / "HR" / uid))


def test_lens_finding_npy_layout(tmp_path):
    root = write_lens_finding_tree(tmp_path / "lf", n_per_folder=3, image_size=16)
    ds = load_builder("lens_finding", "npy", data_dir=root, cache_dir=tmp_path / "c", image_size=16)
    assert ds["test"].num_rows == 6
    rows = all_rows_by_uid(ds)
    names = ds["test"].features["label"].names
    assert names == ["nonlens", "lens"]
    for uid, (split, row) in rows.items():
        folder = uid.split("/")[0]
        assert (split == "test") == folder.startswith("test_")
        assert names[int(row["label"])] == ("nonlens" if "nonlenses" in folder else "lens")
        np.testing.assert_array_equal(row["image"], np.load(root / uid))


def test_bologna_fits_and_catalogue(tmp_path):
    root = write_bologna_tree(tmp_path / "bo", object_ids=range(500, 510), image_size=21)
    ds = load_builder("lens_finding", "bologna", data_dir=root, cache_dir=tmp_path / "c", image_size=21)
    rows = all_rows_by_uid(ds)
    assert len(rows) == 10
    catalog = {int(line.split(",")[0]): line.split(",") for line in (root / "classifications.csv").read_text().split()[1:]}
    for uid, (_, row) in rows.items():
        fields = catalog[int(uid)]
        assert int(row["label"]) == int(fields[1])
        assert row["einstein_area"] == pytest.approx(float(fields[2]), rel=1e-6)
        assert row["numb_pix_lensed_image"] == float(fields[3])
        np.testing.assert_array_equal(row["image"], read_fits_image(root / "Band1" / f"imageEUC_VIS-{uid}.fits"))
    # BSCALE/BZERO were applied: raw int16 in [-1000, 1000) -> [-0.5, 1.5)
    image = numpy_rows(ds["train"])["image"]
    assert image.min() >= -0.5 and image.max() < 1.5 and not np.all(image == np.round(image))


def test_bologna_bands_stack_as_channels(tmp_path):
    root = write_bologna_tree(tmp_path / "bo", object_ids=range(1, 5), image_size=11)
    shutil.copytree(root / "Band1", root / "Band2")
    ds = load_builder("lens_finding", "bologna", data_dir=root, cache_dir=tmp_path / "c", image_size=11, bands=("Band1", "Band2"))
    image = ds["train"].with_format("numpy")[0]["image"]
    assert image.shape == (2, 11, 11)
    np.testing.assert_array_equal(image[0], image[1])


# --------------------------------------------------------------------------- bad input


def test_empty_class_folder_names_the_folder(model_ii_tree, tmp_path):
    for path in (model_ii_tree / "Model_II/cdm").iterdir():
        path.unlink()
    with pytest.raises(LensDataError, match="Model_II/cdm: class folder is empty"):
        load_builder("deeplense", "model_ii", data_dir=model_ii_tree, cache_dir=tmp_path / "c", image_size=16)


def test_missing_class_folder_names_it(model_ii_tree, tmp_path):
    shutil.rmtree(model_ii_tree / "Model_II_test/no_sub")
    with pytest.raises(LensDataError, match="Model_II_test/no_sub: folder not found; expected a class folder 'no_sub'"):
        load_builder("deeplense", "model_ii", data_dir=model_ii_tree, cache_dir=tmp_path / "c", image_size=16)


def test_missing_data_dir_is_explained(tmp_path):
    with pytest.raises(ValueError, match="'deeplense' builder \\(config 'model_i'\\) needs data_dir"):
        load_builder("deeplense", "model_i", cache_dir=tmp_path / "c")
    with pytest.raises(LensDataError, match="Model_I: folder not found; expected the DeepLenseSim folder"):
        load_builder("deeplense", "model_i", data_dir=tmp_path, cache_dir=tmp_path / "c")


def test_corrupt_file_raises_naming_it_or_is_skipped_and_counted(model_ii_tree, tmp_path):
    bad = model_ii_tree / "Model_II/cdm/sim_000002.npy"
    bad.write_bytes(bad.read_bytes()[:60])
    wrong_shape = model_ii_tree / "Model_II/no_sub/sim_000001.npy"
    np.save(wrong_shape, np.ones((17, 16)))
    nan_file = model_ii_tree / "Model_II_test/axion/sim_000000.npy"
    image = np.ones((16, 16))
    image[0, 0] = np.nan
    save_axion_pair(nan_file, image, 1e-23)
    with pytest.raises(LensDataError, match="sim_000002.npy: not a readable .npy file"):
        load_builder("deeplense", "model_ii", data_dir=model_ii_tree, cache_dir=tmp_path / "c", image_size=16)

    builder = prepare_builder(
        "deeplense", "model_ii", data_dir=model_ii_tree, cache_dir=tmp_path / "c", image_size=16, skip_bad_files=True
    )
    skipped = {entry["path"]: entry["problem"] for entry in builder.skipped_files}
    assert set(skipped) == {str(bad), str(wrong_shape), str(nan_file)}
    assert "expected (1, 16, 16)" in skipped[str(wrong_shape)]
    assert "NaN or Inf" in skipped[str(nan_file)]
    ds = builder.as_dataset()
    assert sum(split.num_rows for split in ds.values()) == 24 - 3
    # a cache hit still knows what was skipped when the data was built
    again = prepare_builder(
        "deeplense", "model_ii", data_dir=model_ii_tree, cache_dir=tmp_path / "c", image_size=16, skip_bad_files=True
    )
    assert again.skipped_files == builder.skipped_files


def test_sr_file_without_partner(tmp_path):
    root = write_sr_tree(tmp_path / "sr", n_pairs=4, lr_size=6)
    (root / "HR/sample_00002.npy").unlink()
    with pytest.raises(LensDataError, match="LR/sample_00002.npy: no high-resolution partner"):
        load_builder("lens_sr", data_dir=root, cache_dir=tmp_path / "c", lr_size=6, hr_size=12)
    builder = prepare_builder("lens_sr", data_dir=root, cache_dir=tmp_path / "c", lr_size=6, hr_size=12, skip_bad_files=True)
    assert len(builder.skipped_files) == 1
    assert sum(s.num_rows for s in builder.as_dataset().values()) == 3


def test_catalogue_row_without_fits_file(tmp_path):
    root = write_bologna_tree(tmp_path / "bo", object_ids=range(10, 16), image_size=9)
    (root / "Band1/imageEUC_VIS-13.fits").unlink()
    with pytest.raises(LensDataError, match=r"classifications.csv: row ID 13 has no FITS file '\*-13.fits' in \['Band1'\]"):
        load_builder("lens_finding", "bologna", data_dir=root, cache_dir=tmp_path / "c", image_size=9)
    builder = prepare_builder(
        "lens_finding", "bologna", data_dir=root, cache_dir=tmp_path / "c", image_size=9, skip_bad_files=True
    )
    assert [e["problem"] for e in builder.skipped_files] == ["row ID 13 has no FITS file '*-13.fits' in ['Band1']"]
    assert sorted(u for s in builder.as_dataset().values() for u in s[:]["uid"]) == ["10", "11", "12", "14", "15"]


def test_truncated_fits_in_builder_names_the_file(tmp_path):
    root = write_bologna_tree(tmp_path / "bo", object_ids=range(3), image_size=9)
    path = root / "Band1/imageEUC_VIS-1.fits"
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(LensDataError, match="imageEUC_VIS-1.fits: not a readable FITS file"):
        load_builder("lens_finding", "bologna", data_dir=root, cache_dir=tmp_path / "c", image_size=9)


def test_unknown_builder_config_and_option(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset builder 'nope'; available: \\['deeplense'"):
        load_builder("nope")
    with pytest.raises(ValueError, match="BuilderConfig 'model_iv' not found"):
        load_builder("deeplense", "model_iv", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="doesn't have a 'n_trian' key"):
        load_builder("deeplense", "model_i", cache_dir=tmp_path, n_trian=3)
    with pytest.raises(ValueError, match="leave room for train"):
        load_builder("deeplense", "foundation", data_dir=tmp_path, cache_dir=tmp_path, validation_fraction=0.95)


# --------------------------------------------------------------------------- caching


def test_changed_data_file_is_not_served_from_cache(tmp_path):
    root = write_class_folders(tmp_path / "fm", ("axion", "cdm", "no_sub"), (64, 64), n_per_class=2)
    first = load_builder("deeplense", "foundation", data_dir=root, cache_dir=tmp_path / "c")
    target = root / "cdm/cdm_00000.npy"
    np.save(target, np.full((64, 64), 7.0))
    second = load_builder("deeplense", "foundation", data_dir=root, cache_dir=tmp_path / "c")
    found = [row for s in second.values() for row in s.with_format("numpy") if row["uid"] == "cdm/cdm_00000.npy"]
    assert np.all(found[0]["image"] == 7.0)
    assert first.cache_files != second.cache_files


def test_edited_builder_code_is_not_served_from_cache(tmp_path, monkeypatch):
    copy = tmp_path / "builders"
    shutil.copytree(builders_dir(), copy)
    monkeypatch.setenv(BUILDERS_DIR_ENV, str(copy))
    root = write_class_folders(tmp_path / "fm", ("axion", "cdm", "no_sub"), (64, 64), n_per_class=2)
    before = prepare_builder("deeplense", "foundation", data_dir=root, cache_dir=tmp_path / "c")
    source = copy / "deeplense/deeplense.py"
    source.write_text(source.read_text().replace('row = {"image": loaded.image,', 'row = {"image": loaded.image * 2,'))
    after = prepare_builder("deeplense", "foundation", data_dir=root, cache_dir=tmp_path / "c")
    assert before.hash != after.hash
    a = numpy_rows(before.as_dataset()["train"])["image"]
    b = numpy_rows(after.as_dataset()["train"])["image"]
    np.testing.assert_array_equal(b, 2 * a)
