"""Readers of lens_hf.data: every on-disk variant loads, and every bad input names its file."""
import os
import pickle

import numpy as np
import pytest

from lens_hf.data.readers import (
    LensDataError,
    load_npy,
    read_bologna_catalog,
    read_fits_image,
    read_npy_image,
)
from lens_hf.data.sample_layouts import save_axion_pair
from lens_hf.data.splits import assign_split, derive_seed, split_unit_interval


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.arange(20, dtype=np.float64).reshape(4, 5) * 1.5, "hw"),
        (np.arange(20, dtype=np.float32).reshape(1, 4, 5), "chw"),
        (np.arange(60, dtype=np.int16).reshape(5, 6, 2) - 30, "hwc"),
        (np.arange(90, dtype=np.uint16).reshape(3, 6, 5) + 60000, "chw"),
    ],
    ids=["float64-HW", "float32-1HW", "int16-HWC", "uint16-CHW"],
)
def test_plain_layouts_become_channel_first_float32(tmp_path, array, expected):
    path = tmp_path / "image.npy"
    np.save(path, array)
    image = read_npy_image(path).image
    reference = {"hw": array[None], "chw": array, "hwc": np.moveaxis(array, -1, 0)}[expected].astype(np.float64)
    assert image.dtype == np.float32
    assert image.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(image, reference.astype(np.float32))


def test_axion_pair_gives_image_and_log10_mass(tmp_path):
    image = np.random.default_rng(0).random((8, 8))
    save_axion_pair(tmp_path / "axion.npy", image, 3.2e-23)
    loaded = read_npy_image(tmp_path / "axion.npy")
    np.testing.assert_array_equal(loaded.image[0], image.astype(np.float32))
    assert loaded.mass_ev == pytest.approx(3.2e-23)
    assert loaded.log10_mass == pytest.approx(np.log10(3.2e-23))
    np.save(tmp_path / "plain.npy", np.ones((6, 6)))
    plain = read_npy_image(tmp_path / "plain.npy")
    assert plain.mass_ev is None and np.isnan(plain.log10_mass)


def test_numpy_scalar_mass_from_older_files_is_accepted(tmp_path):
    pair = np.empty(2, dtype=object)
    pair[0], pair[1] = np.ones((6, 6), dtype=np.float32), np.float64(1e-22)
    np.save(tmp_path / "axion.npy", pair)
    assert read_npy_image(tmp_path / "axion.npy").mass_ev == pytest.approx(1e-22)


def _write_object_npy(path, payload):
    """An object-dtype .npy whose pickle body is `payload` (what a hostile file could hold)."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": (2,)})
        pickle.dump(payload, handle, protocol=2)


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "axion.npy"
    _write_object_npy(path, _RunsCommand(f"touch {marker}"))
    with pytest.raises(LensDataError, match="refused to unpickle.*system") as info:
        load_npy(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_pickled_user_class_is_refused(tmp_path):
    path = tmp_path / "axion.npy"
    _write_object_npy(path, {"image": [1, 2]})
    with pytest.raises(LensDataError, match=f"{path.name}.*does not hold the object array"):
        load_npy(path)


@pytest.mark.parametrize(
    "second, message",
    [("heavy", "second item is str"), (None, "second item is NoneType"), (-1e-23, "positive finite"), (np.nan, "positive finite")],
)
def test_pair_that_is_not_image_and_mass_is_refused(tmp_path, second, message):
    pair = np.empty(2, dtype=object)
    pair[0], pair[1] = np.ones((6, 6)), second
    np.save(tmp_path / "axion.npy", pair)
    with pytest.raises(LensDataError, match=message) as info:
        read_npy_image(tmp_path / "axion.npy")
    assert info.value.path == str(tmp_path / "axion.npy")


def test_object_array_of_wrong_length_is_refused(tmp_path):
    triple = np.empty(3, dtype=object)
    triple[:] = [np.ones((6, 6)), 1e-23, "extra"]
    np.save(tmp_path / "axion.npy", triple)
    with pytest.raises(LensDataError, match=r"\[image ndarray, mass float\] pair.*shape \(3,\)"):
        read_npy_image(tmp_path / "axion.npy")


def test_pickle_where_plain_image_expected_is_refused(tmp_path):
    save_axion_pair(tmp_path / "lr.npy", np.ones((6, 6)), 1e-23)
    with pytest.raises(LensDataError, match="plain numeric image"):
        read_npy_image(tmp_path / "lr.npy", allow_mass_pair=False)


@pytest.mark.parametrize("keep_bytes", [0, 10, 100, -9])
def test_truncated_or_empty_npy_names_the_file(tmp_path, keep_bytes):
    good = tmp_path / "good.npy"
    np.save(good, np.ones((16, 16)))
    data = good.read_bytes()
    bad = tmp_path / "bad.npy"
    bad.write_bytes(data[:keep_bytes] if keep_bytes >= 0 else data[:keep_bytes])
    with pytest.raises(LensDataError, match="corrupt or truncated") as info:
        read_npy_image(bad)
    assert info.value.path == str(bad)


def test_truncated_axion_pickle_names_the_file(tmp_path):
    save_axion_pair(tmp_path / "axion.npy", np.ones((16, 16)), 1e-23)
    data = (tmp_path / "axion.npy").read_bytes()
    (tmp_path / "axion.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(LensDataError, match="axion.npy.*corrupt or truncated"):
        read_npy_image(tmp_path / "axion.npy")


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused(tmp_path, bad_value):
    image = np.ones((8, 8))
    image[3, 4] = bad_value
    np.save(tmp_path / "x.npy", image)
    with pytest.raises(LensDataError, match="1 of 64 pixels are NaN or Inf"):
        read_npy_image(tmp_path / "x.npy")


def test_float64_overflowing_float32_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.full((4, 5), 1e300))
    with pytest.raises(LensDataError, match="NaN or Inf"):
        read_npy_image(tmp_path / "x.npy")


def test_wrong_shape_is_refused_with_both_shapes(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((64, 63)))
    with pytest.raises(LensDataError, match=r"x.npy: image has channel-first shape \(1, 64, 63\), expected \(1, 64, 64\)"):
        read_npy_image(tmp_path / "x.npy", expected_shape=(1, 64, 64))


@pytest.mark.parametrize(
    "shape, message",
    [((3, 3, 3), "cannot tell the channel axis"), ((10, 10, 10), "cannot tell"), ((2, 2, 2, 2), "expected an image"), ((0, 5), "empty")],
)
def test_unusable_array_shapes(tmp_path, shape, message):
    np.save(tmp_path / "x.npy", np.ones(shape))
    with pytest.raises(LensDataError, match=message):
        read_npy_image(tmp_path / "x.npy")


def test_non_numeric_dtype_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.full((6, 6), "a"))
    with pytest.raises(LensDataError, match="integer or float pixels, got dtype <U1"):
        read_npy_image(tmp_path / "x.npy")


# --------------------------------------------------------------------------- FITS


def test_fits_applies_bscale_bzero_and_keeps_row_order(tmp_path):
    from astropy.io import fits

    raw = np.arange(12, dtype=np.int16).reshape(3, 4) - 6
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.5, 10.0
    hdu.writeto(tmp_path / "a.fits")
    np.testing.assert_array_equal(read_fits_image(tmp_path / "a.fits"), (raw * 0.5 + 10.0)[None].astype(np.float32))


def test_fits_uint16_and_image_extension(tmp_path):
    from astropy.io import fits

    data = np.array([[0, 40000], [65535, 7]], dtype=np.uint16)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.tile(data, (3, 3)))]).writeto(tmp_path / "u.fits")
    np.testing.assert_array_equal(read_fits_image(tmp_path / "u.fits")[0], np.tile(data, (3, 3)).astype(np.float32))


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.9])
def test_truncated_fits_names_the_file(tmp_path, fraction):
    from astropy.io import fits

    fits.PrimaryHDU(np.ones((101, 101), dtype=np.float32)).writeto(tmp_path / "a.fits")
    data = (tmp_path / "a.fits").read_bytes()
    (tmp_path / "b.fits").write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(LensDataError, match="b.fits: not a readable FITS file"):
        read_fits_image(tmp_path / "b.fits")


def test_fits_without_image_data(tmp_path):
    from astropy.io import fits

    fits.PrimaryHDU().writeto(tmp_path / "e.fits")
    with pytest.raises(LensDataError, match="e.fits: FITS file holds no image data"):
        read_fits_image(tmp_path / "e.fits")


# --------------------------------------------------------------------------- catalogue


def test_bologna_catalog_parses_rows_and_blank_metadata(tmp_path):
    (tmp_path / "c.csv").write_text(
        "ID, is_lens, Einstein_area, numb_pix_lensed_image, flux_lensed_image_in_sigma\n"
        "200001,1,1.5,120,33.2\n200002,0,,0,0\n\n"
    )
    rows = read_bologna_catalog(tmp_path / "c.csv")
    assert [(r.object_id, r.is_lens) for r in rows] == [(200001, 1), (200002, 0)]
    assert rows[0].metadata["numb_pix_lensed_image"] == 120.0
    assert np.isnan(rows[1].metadata["Einstein_area"])


@pytest.mark.parametrize(
    "body, message",
    [
        ("ID,is_lens\n1,0\n", r"lacks column\(s\) \['Einstein_area'"),
        ("ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma\n1,2,0,0,0\n", "line 2: is_lens must be 0 or 1"),
        ("ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma\nx,1,0,0,0\n", "line 2: ID 'x' is not a non-negative integer"),
        ("ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma\n1,1,0,0,0\n1,0,0,0,0\n", "line 3: ID 1 appears twice"),
        ("ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma\n1,1,big,0,0\n", "Einstein_area 'big' is not a number"),
        ("ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma\n1,1,0\n", "line 2 has 3 fields"),
        ("ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma\n", "no rows"),
        ("", "catalogue is empty"),
    ],
)
def test_bad_catalogue_rows_name_file_and_line(tmp_path, body, message):
    (tmp_path / "classifications.csv").write_text(body)
    with pytest.raises(LensDataError, match=message) as info:
        read_bologna_catalog(tmp_path / "classifications.csv")
    assert "classifications.csv" in str(info.value)


_HEADER = "ID,is_lens,Einstein_area,numb_pix_lensed_image,flux_lensed_image_in_sigma\n"


@pytest.mark.parametrize("object_id", ["100003.7", "inf", "-inf", "nan", "-5", "1e5", "1_000", "\u0661\u0662", "0x10", ""])
def test_catalogue_id_that_is_not_a_whole_number_is_refused_not_truncated(tmp_path, object_id):
    (tmp_path / "classifications.csv").write_text(_HEADER + "100001,1,0,0,0\n" + f"{object_id},0,0,0,0\n", encoding="utf-8")
    with pytest.raises(LensDataError) as info:
        read_bologna_catalog(tmp_path / "classifications.csv")
    assert str(info.value) == (
        f"{tmp_path / 'classifications.csv'}: line 3: ID {object_id!r} is not a non-negative integer "
        "(expected digits such as 100003)"
    )


def test_catalogue_ids_written_as_whole_floats_and_a_bom_are_accepted(tmp_path):
    (tmp_path / "c.csv").write_bytes(b"\xef\xbb\xbf" + (_HEADER + "100003.0,1,0,0,0\n100004,0,0,0,0\n").encode())
    assert [row.object_id for row in read_bologna_catalog(tmp_path / "c.csv")] == [100003, 100004]


def test_catalogue_that_is_not_utf8_names_the_line(tmp_path):
    (tmp_path / "classifications.csv").write_bytes(_HEADER.encode() + b"1,1,0,0,0\n2,0,\xff,0,0\n")
    with pytest.raises(LensDataError) as info:
        read_bologna_catalog(tmp_path / "classifications.csv")
    assert str(info.value) == (
        f"{tmp_path / 'classifications.csv'}: line 3: byte 0xff is not UTF-8 text (save the catalogue as UTF-8)"
    )


def test_catalogue_field_over_the_csv_limit_names_the_line(tmp_path):
    (tmp_path / "classifications.csv").write_text(_HEADER + "1,1,0,0,0\n2,0," + "9" * 200000 + ",0,0\n")
    with pytest.raises(LensDataError, match="classifications.csv: line 3: not valid CSV: field larger than field limit"):
        read_bologna_catalog(tmp_path / "classifications.csv")


# --------------------------------------------------------------------------- splits


def test_split_hash_is_fixed_across_machines_and_seeds_differ():
    # sha256-based: these values are the same on every machine and Python version
    assert split_unit_interval("Model_I/axion/sim_1.npy", 0) == split_unit_interval("Model_I/axion/sim_1.npy", 0)
    keys = [f"cdm/sim_{i}.npy" for i in range(2000)]
    seed0 = [assign_split(k, 0, 0.2, 0.1) for k in keys]
    seed1 = [assign_split(k, 1, 0.2, 0.1) for k in keys]
    assert seed0 != seed1
    assert abs(seed0.count("validation") / 2000 - 0.2) < 0.04
    assert abs(seed0.count("test") / 2000 - 0.1) < 0.03
    assert derive_seed(5, "train") != derive_seed(5, "test")
    assert 0 <= derive_seed(5, "train") < 2**63


def test_split_fractions_are_checked():
    with pytest.raises(ValueError, match="validation_fraction must lie in"):
        assign_split("a", 0, 1.5)
    with pytest.raises(ValueError, match="leave room for train"):
        assign_split("a", 0, 0.6, 0.5)


def test_expected_shape_settles_small_ambiguous_layouts(tmp_path):
    chw = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    np.save(tmp_path / "chw.npy", chw)
    np.save(tmp_path / "hwc.npy", np.moveaxis(chw, 0, -1))
    for name in ("chw.npy", "hwc.npy"):
        np.testing.assert_array_equal(read_npy_image(tmp_path / name, expected_shape=(1, 4, 4)).image, chw)
