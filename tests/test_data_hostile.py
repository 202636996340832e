"""Hostile or careless data folders: every bad input is one LensDataError naming the path and what was
expected, found before anything big is allocated; never a silent wrong row, a raw traceback or a crash."""
import importlib.util
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tracemalloc
from contextlib import contextmanager

import numpy as np
import pytest

from lens_hf.data import LensDataError, load_builder, prepare_builder
from lens_hf.data.loading import builder_hash, builder_module
from lens_hf.data.readers import load_npy, read_fits_image, read_npy_image

try:  # numpy >= 2
    from numpy._core import multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray
from lens_hf.data.sample_layouts import (
    write_bologna_tree,
    write_class_folders,
    write_deeplense_model_tree,
    write_sr_tree,
)

BIG_ALLOCATION = 200e6  # bytes; every refusal below must come before numpy or astropy allocates this much


@contextmanager
def peak_allocation():
    """Yields a list that holds, afterwards, the peak bytes traced (numpy and astropy buffers included)."""
    peak = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def write_npy_header(path, shape, descr="<f8", data=b""):
    """A .npy file whose header announces `shape` but which holds only `data` after it."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": descr, "fortran_order": False, "shape": shape})
        handle.write(data)
    return path


HUGE_HEADER = dict(shape=(100000, 100000), data=bytes(64))  # the 192-byte file that asked for 80 GB


# --------------------------------------------------------------------------- .npy headers


@pytest.mark.parametrize(
    "shape, declared", [((100000, 100000), "80,000,000,000"), ((20000, 10000), "1,600,000,000")], ids=["80GB", "1.6GB"]
)
def test_npy_header_declaring_more_than_the_file_holds_is_refused_before_reading(tmp_path, shape, declared):
    path = write_npy_header(tmp_path / "huge.npy", shape, data=bytes(64))
    assert path.stat().st_size == 192
    with peak_allocation() as peak, pytest.raises(LensDataError) as info:
        read_npy_image(path)
    assert str(info.value) == (
        f"{path}: not a readable .npy file (corrupt or truncated): its header declares shape {shape} float64 "
        f"({declared} bytes) but only 64 bytes follow it"
    )
    assert peak[0] < BIG_ALLOCATION


def test_npz_named_npy_is_refused_naming_the_file(tmp_path):
    np.savez(tmp_path / "image.npz", image=np.ones((8, 8)))
    os.rename(tmp_path / "image.npz", tmp_path / "image.npy")
    with pytest.raises(LensDataError, match="image.npy: not a readable .npy file .*magic string is not correct"):
        read_npy_image(tmp_path / "image.npy")


def test_skip_bad_files_skips_a_huge_header_and_records_why(tmp_path):
    root = write_class_folders(tmp_path / "fm", ("axion", "cdm", "no_sub"), (64, 64), n_per_class=3)
    bad = write_npy_header(root / "cdm/cdm_00001.npy", **HUGE_HEADER)
    with pytest.raises(LensDataError, match="cdm_00001.npy: not a readable .npy file.*header declares shape"):
        load_builder("deeplense", "foundation", data_dir=root, cache_dir=tmp_path / "c")
    builder = prepare_builder("deeplense", "foundation", data_dir=root, cache_dir=tmp_path / "c", skip_bad_files=True)
    assert [entry["path"] for entry in builder.skipped_files] == [str(bad)]
    assert "header declares shape (100000, 100000) float64" in builder.skipped_files[0]["problem"]
    assert sum(split.num_rows for split in builder.as_dataset().values()) == 8


def test_build_dataset_command_exits_2_with_one_line_for_a_huge_header(repo_root, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("build_dataset_hostile", repo_root / "scripts/build_dataset.py")
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script
    try:
        spec.loader.exec_module(script)
        root = write_class_folders(tmp_path / "fm", ("axion", "cdm", "no_sub"), (64, 64), n_per_class=2)
        bad = write_npy_header(root / "axion/axion_00000.npy", **HUGE_HEADER)
        argv = ["deeplense", "--config", "foundation", "--data_dir", str(root), "--output_dir", str(tmp_path / "out"),
                "--cache_dir", str(tmp_path / "c")]
        assert script.main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        (error_line,) = [line for line in err.splitlines() if line.startswith("error:")]
        assert error_line.startswith(f"error: bad input data: {bad}: not a readable .npy file (corrupt or truncated)")
    finally:
        sys.modules.pop(spec.name, None)


# --------------------------------------------------------------------------- crafted pickles


class _Call:
    """Pickles as `func(*args)` (then `__setstate__(state)`): how a crafted file calls numpy's own globals."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def write_object_npy(path, payload, shape=(2,)):
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": shape})
        pickle.dump(payload, handle, protocol=3)
    return path


def _array(shape, dtype, data, fortran=False):
    """numpy's own pickle of an array: an empty `_reconstruct` placeholder, then its state."""
    return _Call(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, fortran, data))


def _pair(image):
    return _array((2,), np.dtype("O"), [image, 1e-23])


def _altered_float64(state):
    return _Call(np.dtype, ("f8", False, True), state)


CRAFTED_PICKLES = {
    # each allocated 2-4 GB (or crashed) before numpy was reached only through checked stand-ins
    "reconstruct_2GB": (
        _Call(multiarray._reconstruct, (np.ndarray, (2**28,), np.dtype("O"))),
        r"declares an array of shape \(268435456,\) object \(2,147,483,648 bytes\), more than its \d+-byte pickle",
    ),
    "ndarray_called": (_Call(np.ndarray, ((2**28,), np.dtype("O"))), "calls numpy.ndarray directly"),
    "void_scalar_2GB": (_Call(multiarray.scalar, (np.dtype("V2000000000"),)), r"numpy.dtype\('V2000000000'\) is not a plain"),
    "scalar_without_bytes": (_Call(multiarray.scalar, (np.dtype("f8"),)), "float64 scalar needs exactly its 8 bytes"),
    "declared_image_2GB": (
        _pair(_array((2**31,), np.dtype("i1"), b"")), r"int8 array of shape \(2147483648,\) needs 2147483648 bytes of data, got 0"
    ),
    "dtype_given_subarray": (
        _pair(_array((8, 8), _altered_float64((3, "|", (np.dtype("i1"), (10**6,)), None, None, 8, 1, 0)), bytes(512))),
        "pickled dtype float64 has a state .* numpy never writes",
    ),
    "dtype_given_object_flags": (
        _pair(_array((8, 8), _altered_float64((3, "<", None, None, None, -1, -1, 0x3F)), bytes(512))),
        "pickled dtype float64 has a state .* numpy never writes",
    ),
}


class _BuiltTwice:
    """One array placeholder whose state the pickle sets twice (a second BUILD on the memoised object)."""

    def __reduce__(self):
        return (multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (2,), np.dtype("O"), False, [None, None]))


@pytest.mark.parametrize("name", sorted(CRAFTED_PICKLES))
def test_crafted_pickle_is_refused_before_numpy_allocates(tmp_path, name):
    payload, message = CRAFTED_PICKLES[name]
    path = write_object_npy(tmp_path / "axion.npy", payload)
    assert path.stat().st_size < 1000
    with peak_allocation() as peak, pytest.raises(LensDataError, match=f"axion.npy: refused to unpickle: .*{message}"):
        read_npy_image(path)
    assert peak[0] < BIG_ALLOCATION


def test_object_state_shorter_than_its_shape_cannot_crash_the_reader(tmp_path):
    """numpy reads past a too-short item list (a segmentation fault): run it where a crash cannot take pytest down."""
    path = write_object_npy(tmp_path / "axion.npy", _array((2**20,), np.dtype("O"), []))
    code = "import sys; from lens_hf.data.readers import load_npy; load_npy(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"lens_hf.data.readers.LensDataError: {path}: refused to unpickle: an object array of shape (1048576,) "
        "needs a list of 1048576 items, got list of 0"
    )


def test_array_state_set_twice_is_refused(tmp_path):
    first = pickle.dumps(_BuiltTwice(), protocol=3)
    # after the first BUILD the array is on the stack: push a second state and BUILD again
    second = pickle.dumps((1, (2,), np.dtype("O"), False, [np.ones((4, 4)), 1e-23]), protocol=3)
    body = first[:-1] + second[2:-1] + b"b."
    path = tmp_path / "axion.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": (2,)})
        handle.write(body)
    with pytest.raises(LensDataError, match="refused to unpickle: the pickle sets the state of one array twice"):
        load_npy(path)


def test_real_numpy_pickles_still_load(tmp_path):
    """Big-endian, Fortran-order, integer and numpy-scalar parts of an [image, mass] pair are what numpy writes."""
    for image in (np.arange(64, dtype=">f8").reshape(8, 8), np.asfortranarray(np.arange(64.0).reshape(8, 8)),
                  np.arange(64, dtype=np.int16).reshape(8, 8)):
        pair = np.empty(2, dtype=object)
        pair[0], pair[1] = image, np.float32(2e-23)
        np.save(tmp_path / "axion.npy", pair)
        loaded = read_npy_image(tmp_path / "axion.npy")
        np.testing.assert_array_equal(loaded.image[0], image.astype(np.float32))
        assert loaded.mass_ev == pytest.approx(2e-23)
        assert type(load_npy(tmp_path / "axion.npy")[0]) is np.ndarray


# --------------------------------------------------------------------------- FITS


def test_fits_header_declaring_more_than_the_file_holds_is_refused_before_reading(tmp_path):
    from astropy.io import fits

    header = fits.Header([("SIMPLE", True), ("BITPIX", -64), ("NAXIS", 2), ("NAXIS1", 20000), ("NAXIS2", 10000)])
    path = tmp_path / "huge.fits"
    path.write_bytes(header.tostring().encode() + bytes(2880))
    with peak_allocation() as peak, pytest.raises(LensDataError) as info:
        read_fits_image(path)
    assert str(info.value) == (
        f"{path}: not a readable FITS file (corrupt or truncated): its header declares a (10000, 20000) image of "
        "BITPIX -64 (1,600,000,000 bytes), more than the 2,880 bytes that follow it"
    )
    assert peak[0] < BIG_ALLOCATION


def test_compressed_fits_still_reads(tmp_path):
    from astropy.io import fits

    image = (np.arange(40000, dtype=np.int16).reshape(200, 200) % 7).astype(np.int16)  # integers: lossless
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image, compression_type="GZIP_1")]).writeto(tmp_path / "c.fits")
    assert os.path.getsize(tmp_path / "c.fits") < image.nbytes
    np.testing.assert_array_equal(read_fits_image(tmp_path / "c.fits")[0], image.astype(np.float32))


# --------------------------------------------------------------------------- Bologna: two files, one ID


def test_two_fits_files_of_one_id_name_both_or_are_skipped(tmp_path):
    root = write_bologna_tree(tmp_path / "bo", object_ids=range(5), image_size=9)
    first, second = root / "Band1/imageEUC_VIS-003.fits", root / "Band1/imageEUC_VIS-3.fits"
    shutil.copy(second, first)
    with pytest.raises(LensDataError) as info:
        load_builder("lens_finding", "bologna", data_dir=root, cache_dir=tmp_path / "c", image_size=9)
    assert str(info.value) == f"{second}: maps to ID 3, as {first} does; keep one file per ID"
    builder = prepare_builder(
        "lens_finding", "bologna", data_dir=root, cache_dir=tmp_path / "c", image_size=9, skip_bad_files=True
    )
    assert [entry["path"] for entry in builder.skipped_files] == [str(second)]
    assert sorted(u for s in builder.as_dataset().values() for u in s[:]["uid"]) == ["0", "1", "2", "4"]


# --------------------------------------------------------------------------- class folders


@pytest.fixture
def model_tree(tmp_path):
    return write_deeplense_model_tree(tmp_path / "data", "Model_II", image_size=16, n_per_class=3, n_test_per_class=2)


def _load_model_ii(root, tmp_path, **kwargs):
    return prepare_builder("deeplense", "model_ii", data_dir=root, cache_dir=tmp_path / "c", image_size=16, **kwargs)


def test_changes_inside_a_symlinked_class_folder_change_the_cache_key(model_tree, tmp_path):
    elsewhere = tmp_path / "elsewhere/cdm"
    shutil.move(model_tree / "Model_II/cdm", elsewhere)
    (model_tree / "Model_II/cdm").symlink_to(elsewhere, target_is_directory=True)
    before = _load_model_ii(model_tree, tmp_path)
    np.save(elsewhere / "sim_000099.npy", np.full((16, 16), 5.0))
    after = _load_model_ii(model_tree, tmp_path)
    assert before.hash != after.hash
    uids = [u for split in after.as_dataset().values() for u in split[:]["uid"]]
    assert "Model_II/cdm/sim_000099.npy" in uids


def test_symlink_loop_of_folders_ends_the_fingerprint_and_the_build(model_tree, tmp_path):
    (model_tree / "Model_II/cdm/back_up").symlink_to(model_tree, target_is_directory=True)
    (model_tree / "self_loop").symlink_to(model_tree / "self_loop")
    module = builder_module("deeplense")
    assert builder_hash(module, str(model_tree)) == builder_hash(module, str(model_tree))
    assert sum(split.num_rows for split in _load_model_ii(model_tree, tmp_path).as_dataset().values()) == 15


def test_unknown_class_folder_is_warned_about_and_recorded(model_tree, tmp_path, caplog):
    (model_tree / "Model_II/vort").mkdir()
    np.save(model_tree / "Model_II/vort/a.npy", np.ones((16, 16)))
    with caplog.at_level(logging.WARNING, logger="lens_hf.data.layouts"):
        builder = _load_model_ii(model_tree, tmp_path)
    assert f"{model_tree / 'Model_II'}: ignoring folder(s) vort: not among the folders this config reads" in caplog.text
    assert [entry["path"] for entry in builder.ignored_folders] == [str(model_tree / "Model_II/vort")]
    again = _load_model_ii(model_tree, tmp_path)  # a cache hit still knows
    assert again.ignored_folders == builder.ignored_folders


def test_export_card_lists_skipped_files_and_folders_not_read_relative_to_the_data(tmp_path):
    from lens_hf.data.export import export_builder

    root = write_class_folders(tmp_path / "fm", ("axion", "cdm", "no_sub"), (64, 64), n_per_class=3)
    write_npy_header(root / "cdm/cdm_00001.npy", **HUGE_HEADER)
    (root / "notes").mkdir()
    builder = prepare_builder("deeplense", "foundation", data_dir=root, cache_dir=tmp_path / "c", skip_bad_files=True)
    card = export_builder(builder, tmp_path / "export").read_text()  # returns the card path
    assert "**1 bad input file(s) were skipped**" in card
    assert "- `cdm/cdm_00001.npy`: not a readable .npy file" in card
    assert "**1 folder(s) beside the data were not read**" in card
    assert "- `notes`: not among the folders this config reads" in card
    assert str(tmp_path) not in card  # the user's disk is not published


def test_regression_config_does_not_warn_about_the_classes_it_leaves_out(model_tree, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="lens_hf.data.layouts"):
        builder = prepare_builder("deeplense", "regression_model_ii", data_dir=model_tree, cache_dir=tmp_path / "c",
                                  image_size=16)
    assert "ignoring folder" not in caplog.text and builder.ignored_folders == []


def test_skip_bad_files_emptying_a_class_is_an_error(model_tree, tmp_path):
    for path in (model_tree / "Model_II/cdm").iterdir():
        path.write_bytes(b"junk")
    with pytest.raises(LensDataError) as info:
        _load_model_ii(model_tree, tmp_path, skip_bad_files=True, validation_fraction=0.0)
    assert str(info.value) == (
        f"{model_tree / 'Model_II/cdm'}: all 3 file(s) of class 'cdm' in split 'train' were bad and skipped; "
        "the split would have no example of the class"
    )


def test_skip_bad_files_emptying_a_whole_split_is_an_error(tmp_path):
    root = write_sr_tree(tmp_path / "sr", n_pairs=4, lr_size=6)
    for path in (root / "LR").iterdir():
        path.write_bytes(b"junk")
    with pytest.raises(LensDataError, match=r"/LR: all \d file\(s\) of split '\w+' were bad and skipped; the split would be empty"):
        load_builder("lens_sr", data_dir=root, cache_dir=tmp_path / "c", lr_size=6, hr_size=12, skip_bad_files=True)


# --------------------------------------------------------------------------- dangling symlinks and loops


@pytest.mark.parametrize("kind", ["broken", "loop"])
def test_file_symlink_that_leads_nowhere_names_the_link_or_is_skipped(model_tree, tmp_path, kind):
    link = model_tree / "Model_II/cdm/sim_000007.npy"
    link.symlink_to(tmp_path / "gone.npy" if kind == "broken" else link)
    problem = (f"broken symlink: its target {tmp_path / 'gone.npy'} does not exist" if kind == "broken"
               else f"symlink loop: sim_000007.npy -> {link} leads back to itself")
    with pytest.raises(LensDataError) as info:
        _load_model_ii(model_tree, tmp_path)
    assert str(info.value) == f"{link}: {problem}"
    builder = _load_model_ii(model_tree, tmp_path, skip_bad_files=True)
    assert builder.skipped_files == [{"path": str(link), "problem": problem}]
    with pytest.raises(LensDataError, match=f"{link}: {problem}"):
        load_npy(link)


def test_broken_class_folder_and_data_dir_symlinks_name_the_link(model_tree, tmp_path):
    shutil.rmtree(model_tree / "Model_II_test/cdm")
    (model_tree / "Model_II_test/cdm").symlink_to(tmp_path / "moved_away")
    with pytest.raises(LensDataError) as info:
        _load_model_ii(model_tree, tmp_path)
    assert str(info.value) == (
        f"{model_tree / 'Model_II_test/cdm'}: broken symlink: its target {tmp_path / 'moved_away'} does not exist; "
        f"expected a class folder 'cdm' of ['axion', 'cdm', 'no_sub'] in {model_tree / 'Model_II_test'}"
    )
    (tmp_path / "data_link").symlink_to(tmp_path / "no_data")
    with pytest.raises(LensDataError, match=f"data_link: broken symlink: its target {tmp_path / 'no_data'} does not exist; expected"):
        _load_model_ii(tmp_path / "data_link", tmp_path)


def test_class_folder_of_only_broken_links_is_an_error_even_when_skipping(model_tree, tmp_path):
    folder = model_tree / "Model_II/no_sub"
    for path in sorted(folder.iterdir()):
        path.unlink()
        path.symlink_to(tmp_path / "gone" / path.name)
    with pytest.raises(LensDataError) as info:
        _load_model_ii(model_tree, tmp_path, skip_bad_files=True)
    assert str(info.value) == f"{folder}: class folder has no usable .npy files: all 3 were bad and skipped"
