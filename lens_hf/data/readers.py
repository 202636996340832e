"""Readers for the on-disk formats lensing data comes in.

Every reader returns channel-first float32 arrays and raises `LensDataError`, naming the
file and what was expected, for anything that would otherwise become a silently wrong row:
unreadable or truncated files, empty or non-finite images, unexpected shapes, and pickles
that are not a plain `[image, mass]` pair.
"""
from __future__ import annotations

import csv
import math
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray

PathLike = Union[str, Path]

# A channel axis is never longer than this; anything longer is a spatial axis.
MAX_CHANNELS = 4


class LensDataError(ValueError):
    """A data file that cannot become a correct row; `path` names it, `problem` says why."""

    def __init__(self, path: PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


# --------------------------------------------------------------------------- safe .npy pickles

# What numpy writes when it pickles an object array holding arrays and numpy scalars. numpy 1.x
# files name `numpy.core.multiarray`, numpy 2.x files `numpy._core.multiarray`.
_ALLOWED_PICKLE_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_PICKLE_GLOBALS[(_module, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED_PICKLE_GLOBALS[(_module, "scalar")] = _multiarray.scalar


class _ForbiddenGlobal(pickle.UnpicklingError):
    pass


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and scalars and refuses every other global, so no pickled
    callable (os.system, eval, a user class) can run while reading a data file."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise _ForbiddenGlobal(
                f"the pickle references {module}.{name}; only numpy arrays and numpy scalars are allowed"
            ) from None


def _load_object_npy(path: Path) -> np.ndarray:
    """Read an object-dtype .npy (header + pickle body) through the numpy-only unpickler."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise LensDataError(path, f"object .npy of format version {version} is not supported (expected 1.0 or 2.0)")
        if not dtype.hasobject:
            raise LensDataError(path, f"expected an object array, the header says dtype {dtype}")
        try:
            array = _NumpyOnlyUnpickler(handle).load()
        except _ForbiddenGlobal as error:
            raise LensDataError(path, f"refused to unpickle: {error}") from None
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        raise LensDataError(path, f"pickle body does not hold the object array of shape {tuple(shape)} its header announces")
    return array


def load_npy(path: PathLike) -> np.ndarray:
    """Load a .npy file; object arrays go through the numpy-only unpickler, never `pickle.load`."""
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise LensDataError(path, f"not a readable .npy file (corrupt or truncated): {error}") from None
    except (OSError, EOFError) as error:
        raise LensDataError(path, f"not a readable .npy file (corrupt or truncated): {error}") from None
    try:
        return _load_object_npy(path)
    except LensDataError:
        raise
    except Exception as error:  # a damaged pickle fails in many ways; all mean the same here
        raise LensDataError(path, f"not a readable object .npy file (corrupt or truncated): {error!r}") from None


def split_image_and_mass(array: np.ndarray, path: PathLike) -> tuple[np.ndarray, float]:
    """Unpack DeepLenseSim's axion object array `[image, mass_eV]`, checking both parts."""
    if array.dtype != object or array.shape != (2,):
        raise LensDataError(
            path, f"expected a pickled [image ndarray, mass float] pair, got a {array.dtype} array of shape {array.shape}"
        )
    image, mass = array[0], array[1]
    if not isinstance(image, np.ndarray) or image.dtype == object:
        raise LensDataError(path, f"expected [image ndarray, mass float]; the first item is {type(image).__name__}")
    if isinstance(mass, (bool, np.bool_)) or not isinstance(mass, (int, float, np.integer, np.floating)):
        raise LensDataError(path, f"expected [image ndarray, mass float]; the second item is {type(mass).__name__}")
    mass = float(mass)
    if not math.isfinite(mass) or mass <= 0:
        raise LensDataError(path, f"axion mass must be a positive finite number of eV, got {mass}")
    return image, mass


@dataclass(frozen=True)
class NpyImage:
    """One image file: channel-first float32 pixels and, for axion pairs, the mass in eV."""

    image: np.ndarray
    mass_ev: Optional[float] = None

    @property
    def log10_mass(self) -> float:
        return math.log10(self.mass_ev) if self.mass_ev is not None else math.nan


def read_npy_image(
    path: PathLike,
    expected_shape: Optional[Sequence[int]] = None,
    allow_mass_pair: bool = True,
) -> NpyImage:
    """Read one image from a .npy file in any of the layouts DeepLense data uses.

    Plain arrays of (H,W), (C,H,W) or (H,W,C) in any integer or float dtype, and pickled
    `[image, mass]` axion pairs. `expected_shape` is the channel-first (C,H,W) every image of
    the dataset must have.
    """
    array = load_npy(path)
    mass = None
    if array.dtype == object:
        if not allow_mass_pair:
            raise LensDataError(path, "expected a plain numeric image array, found a pickled object array")
        array, mass = split_image_and_mass(array, path)
    image = to_channel_first(array, path, expected_shape)
    image = to_finite_float32(image, path)
    if expected_shape is not None:
        check_shape(image, expected_shape, path)
    return NpyImage(image=image, mass_ev=mass)


# --------------------------------------------------------------------------- array checks


def to_channel_first(array: np.ndarray, path: PathLike, expected_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """(H,W) -> (1,H,W); (H,W,C) -> (C,H,W); (C,H,W) unchanged.

    With `expected_shape` (C,H,W) an array of exactly that shape, or its (H,W,C) transpose, is
    taken as such; otherwise the channel axis is the short one (at most MAX_CHANNELS long).
    """
    if array.size == 0:
        raise LensDataError(path, f"image is empty (shape {array.shape})")
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3 and expected_shape is not None:
        channels, height, width = expected_shape
        if array.shape == (channels, height, width):
            return array
        if array.shape == (height, width, channels):
            return np.moveaxis(array, -1, 0)
    if array.ndim == 3:
        leading_is_channel = array.shape[0] <= MAX_CHANNELS
        trailing_is_channel = array.shape[2] <= MAX_CHANNELS
        if leading_is_channel and not trailing_is_channel:
            return array
        if trailing_is_channel and not leading_is_channel:
            return np.moveaxis(array, -1, 0)
        raise LensDataError(
            path,
            f"cannot tell the channel axis of an image of shape {array.shape}: expected (C,H,W) or (H,W,C) "
            f"with C <= {MAX_CHANNELS} and H, W > {MAX_CHANNELS}",
        )
    raise LensDataError(path, f"expected an image of shape (H,W), (C,H,W) or (H,W,C); got shape {array.shape}")


def to_finite_float32(array: np.ndarray, path: PathLike) -> np.ndarray:
    """Cast integer/float pixels to float32 and refuse NaN/Inf, including overflow from float64."""
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise LensDataError(path, f"expected integer or float pixels, got dtype {array.dtype}")
    with np.errstate(over="ignore"):
        image = np.ascontiguousarray(array, dtype=np.float32)
    bad = np.count_nonzero(~np.isfinite(image))
    if bad:
        raise LensDataError(path, f"{bad} of {image.size} pixels are NaN or Inf (after conversion to float32)")
    return image


def check_shape(image: np.ndarray, expected_shape: Sequence[int], path: PathLike) -> None:
    if tuple(image.shape) != tuple(expected_shape):
        raise LensDataError(
            path, f"image has channel-first shape {tuple(image.shape)}, expected {tuple(expected_shape)}"
        )


# --------------------------------------------------------------------------- FITS


def read_fits_image(path: PathLike, expected_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """Read the first image HDU of a FITS file with astropy (BSCALE/BZERO applied, row order kept).

    datasets' Pillow path flips rows and ignores the scaling keywords, so FITS never goes there.
    """
    from astropy.io import fits

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns before it raises on truncation; the error says it all
            with fits.open(path, memmap=False) as hdus:
                data = next((hdu.data for hdu in hdus if hdu.is_image and hdu.data is not None), None)
                data = None if data is None else np.array(data)
    except Exception as error:
        raise LensDataError(path, f"not a readable FITS file (corrupt or truncated): {error}") from None
    if data is None:
        raise LensDataError(path, "FITS file holds no image data in any HDU")
    image = to_finite_float32(to_channel_first(data, path, expected_shape), path)
    if expected_shape is not None:
        check_shape(image, expected_shape, path)
    return image


# --------------------------------------------------------------------------- Bologna catalogue

BOLOGNA_METADATA_COLUMNS = ("Einstein_area", "numb_pix_lensed_image", "flux_lensed_image_in_sigma")


@dataclass(frozen=True)
class BolognaRow:
    """One line of the Bologna challenge's classifications.csv."""

    object_id: int
    is_lens: int
    metadata: dict  # BOLOGNA_METADATA_COLUMNS -> float (NaN where the catalogue leaves it blank)


def read_bologna_catalog(path: PathLike) -> list[BolognaRow]:
    """Parse classifications.csv (`ID, is_lens, Einstein_area, numb_pix_lensed_image,
    flux_lensed_image_in_sigma`), checking every row so a typo never becomes a label."""
    path = Path(path)
    if not path.is_file():
        raise LensDataError(path, "catalogue file not found (expected classifications.csv with ID and is_lens columns)")
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise LensDataError(path, "catalogue is empty; expected a header with ID and is_lens")
        header = [name.strip() for name in header]
        required = ("ID", "is_lens") + BOLOGNA_METADATA_COLUMNS
        missing = [name for name in required if name not in header]
        if missing:
            raise LensDataError(path, f"catalogue header lacks column(s) {missing}; found {header}")
        column = {name: header.index(name) for name in required}
        rows, seen = [], set()
        for line_number, fields in enumerate(reader, start=2):
            if not any(field.strip() for field in fields):
                continue
            if len(fields) != len(header):
                raise LensDataError(path, f"line {line_number} has {len(fields)} fields, the header has {len(header)}")
            rows.append(_parse_bologna_row(path, line_number, fields, column, seen))
    if not rows:
        raise LensDataError(path, "catalogue has a header but no rows")
    return rows


def _parse_bologna_row(path: Path, line_number: int, fields: list, column: dict, seen: set) -> BolognaRow:
    def field(name: str) -> str:
        return fields[column[name]].strip()

    try:
        object_id = int(float(field("ID")))
    except ValueError:
        raise LensDataError(path, f"line {line_number}: ID {field('ID')!r} is not an integer") from None
    if object_id in seen:
        raise LensDataError(path, f"line {line_number}: ID {object_id} appears twice")
    seen.add(object_id)
    try:
        is_lens = float(field("is_lens"))
    except ValueError:
        is_lens = math.nan
    if is_lens not in (0.0, 1.0):
        raise LensDataError(path, f"line {line_number}: is_lens must be 0 or 1, got {field('is_lens')!r}")
    metadata = {}
    for name in BOLOGNA_METADATA_COLUMNS:
        text = field(name)
        try:
            metadata[name] = float(text) if text else math.nan
        except ValueError:
            raise LensDataError(path, f"line {line_number}: {name} {text!r} is not a number") from None
    return BolognaRow(object_id=object_id, is_lens=int(is_lens), metadata=metadata)
