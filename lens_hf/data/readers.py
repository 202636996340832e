"""Readers for the on-disk formats lensing data comes in.

Every reader returns channel-first float32 arrays and raises `LensDataError`, naming the
file and what was expected, for anything that would otherwise become a silently wrong row:
unreadable or truncated files, empty or non-finite images, unexpected shapes, and pickles
that are not a plain `[image, mass]` pair. Sizes a file declares (a .npy or FITS header, the
arrays a pickle asks numpy for) are checked against the bytes it holds before anything is
allocated, so a few hundred crafted bytes cannot make a reader claim gigabytes.
"""
from __future__ import annotations

import codecs
import csv
import errno
import io
import math
import os
import pickle
import re
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


def symlink_problem(path: PathLike) -> Optional[str]:
    """Why `path` leads nowhere if it is a symlink that cannot be followed (broken, or a loop); else None."""
    path = Path(path)
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except FileNotFoundError:
        return f"broken symlink: its target {os.readlink(path)} does not exist"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"symlink loop: {path.name} -> {os.readlink(path)} leads back to itself"
        return f"symlink cannot be followed: {error.strerror}"
    return None


# --------------------------------------------------------------------------- .npy files

# What numpy writes when it pickles an object array holding arrays and numpy scalars. numpy 1.x
# files name `numpy.core.multiarray`, numpy 2.x files `numpy._core.multiarray`. Each name maps to
# the unpickler's checked stand-in for it, never to the numpy callable itself.
_PICKLE_GLOBALS = {("numpy", "ndarray"): "_ndarray", ("numpy", "dtype"): "_dtype"}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _PICKLE_GLOBALS[(_module, "_reconstruct")] = "_reconstruct"
    _PICKLE_GLOBALS[(_module, "scalar")] = "_scalar"

# dtype kinds an image, a mass or the [image, mass] pair can have: bool, integers, floats, complex, object.
_PLAIN_DTYPE_KINDS = "biufcO"


class _Refused(pickle.UnpicklingError):
    """The pickle asks for something numpy never writes into an [image, mass] file."""


def _ndarray_marker(*args, **kwargs):
    """Stands for `numpy.ndarray` in a pickle: numpy names it only as `_reconstruct`'s array type."""
    raise _Refused("the pickle calls numpy.ndarray directly; numpy files only name it as _reconstruct's array type")


class _PickledDtype:
    """What `numpy.dtype(...)` gives the pickle: a plain dtype whose state (the pickle's BUILD) may only
    set the byte order, so no crafted fields, item size or flags ever reach numpy's dtype code."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[2:7] == (None,) * 3 + (-1, -1)
                and state[1] in ("<", ">", "|", "=") and state[7] == self.dtype.flags):
            raise _Refused(f"the pickled dtype {self.dtype} has a state (fields, item size or flags) numpy never writes for it")
        if state[1] in "<>" and self.dtype.byteorder != "|":
            self.dtype = self.dtype.newbyteorder(state[1])


class _PickledArray(np.ndarray):
    """What `_reconstruct` gives the pickle: an empty array whose `__setstate__` (the pickle's BUILD) checks
    shape, dtype and payload, and charges the unpickler's allowance, before numpy allocates anything."""

    def __setstate__(self, state):
        unpickler = self.__dict__.pop("_unpickler", None)
        if unpickler is None:
            raise _Refused("the pickle sets the state of one array twice")
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and isinstance(state[3], bool)):
            raise _Refused(f"array state is not numpy's (1, shape, dtype, fortran_order, data): {state!r:.120}")
        _, shape, dtype, fortran_order, data = state
        shape, dtype = _checked_shape(shape), _plain_dtype(dtype)
        count = math.prod(shape)
        if dtype.hasobject and not (type(data) is list and len(data) == count):
            raise _Refused(f"an object array of shape {shape} needs a list of {count} items, got {type(data).__name__}"
                           + (f" of {len(data)}" if isinstance(data, list) else ""))
        if not dtype.hasobject and not (type(data) is bytes and len(data) == count * dtype.itemsize):
            raise _Refused(f"a {dtype} array of shape {shape} needs {count * dtype.itemsize} bytes of data, got "
                           + (f"{len(data)}" if isinstance(data, bytes) else type(data).__name__))
        unpickler.charge(shape, dtype)
        super().__setstate__((1, shape, dtype, fortran_order, data))


def _checked_shape(shape) -> tuple:
    if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
        raise _Refused(f"array shape must be a tuple of non-negative integers, got {shape!r:.80}")
    return shape


def _plain_dtype(dtype) -> np.dtype:
    """A bool/integer/float/complex/object dtype from the pickle (a `_PickledDtype`, or `_reconstruct`'s b'b')."""
    if isinstance(dtype, _PickledDtype):
        dtype = dtype.dtype
    elif isinstance(dtype, (bytes, str)) and len(dtype) <= 8:
        dtype = np.dtype(dtype)
    else:
        raise _Refused(f"expected a numpy dtype, got {type(dtype).__name__}")
    if dtype.kind not in _PLAIN_DTYPE_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"dtype {dtype} is not a plain number or object type")
    return dtype


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and scalars and refuses every other global, so no pickled callable (os.system,
    eval, a user class) can run while reading a data file. numpy's constructors are reached only through
    checked stand-ins, and together they may allocate no more than the pickle's own size (counting an object
    item as one byte): a numpy-written pickle carries every byte of its arrays, so a tiny crafted file cannot
    ask for gigabytes, nor feed numpy a state that makes it read memory it does not own."""

    def __init__(self, body: bytes):
        super().__init__(io.BytesIO(body))
        self.size = len(body)
        self.allowance = len(body)

    def find_class(self, module: str, name: str):
        try:
            stand_in = _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(
                f"the pickle references {module}.{name}; only numpy arrays and numpy scalars are allowed"
            ) from None
        return _ndarray_marker if stand_in == "_ndarray" else getattr(self, stand_in)

    def charge(self, shape: tuple, dtype: np.dtype) -> None:
        """Refuse an allocation of `shape` x `dtype` that the rest of the pickle's bytes cannot account for."""
        count = math.prod(shape)
        cost = count if dtype.hasobject else count * dtype.itemsize
        if cost > self.allowance:
            raise _Refused(
                f"it declares an array of shape {shape} {dtype} ({count * dtype.itemsize:,} bytes), "
                f"more than its {self.size:,}-byte pickle can hold"
            )
        self.allowance -= cost

    def _dtype(self, spec, align=False, copy=True) -> _PickledDtype:
        if not isinstance(spec, str) or len(spec) > 8:
            raise _Refused(f"numpy.dtype({spec!r:.40}) is not a plain number or object type")
        return _PickledDtype(_plain_dtype(spec))

    def _reconstruct(self, subtype, shape, dtype) -> _PickledArray:
        if subtype is not _ndarray_marker:
            raise _Refused(f"_reconstruct may only build numpy.ndarray, got {subtype!r:.60}")
        shape, dtype = _checked_shape(shape), _plain_dtype(dtype)
        self.charge(shape, dtype)
        array = np.ndarray.__new__(_PickledArray, shape, dtype)
        array._unpickler = self
        return array

    def _scalar(self, dtype, *data):
        dtype = _plain_dtype(dtype)
        if dtype.hasobject or len(data) != 1 or type(data[0]) is not bytes or len(data[0]) != dtype.itemsize:
            raise _Refused(f"a {dtype} scalar needs exactly its {dtype.itemsize} bytes of data")
        self.charge((), dtype)
        return _multiarray.scalar(dtype, data[0])


def _as_plain_ndarray(array: _PickledArray, done: Optional[dict] = None) -> np.ndarray:
    """The unpickled tree with every `_PickledArray` (built or not) turned into a plain ndarray; `done` maps
    the ones already turned, so an array the pickle made hold itself ends the walk."""
    done = {} if done is None else done
    if id(array) in done:
        return done[id(array)]
    array.__dict__.pop("_unpickler", None)
    plain = done[id(array)] = array.view(np.ndarray)
    if plain.dtype.hasobject:
        for index, item in np.ndenumerate(plain):
            if isinstance(item, _PickledArray):
                plain[index] = _as_plain_ndarray(item, done)
    return plain


def _read_npy_header(handle, path: Path) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran_order, dtype) from a .npy header; the file must be format 1.0 or 2.0."""
    try:
        version = np.lib.format.read_magic(handle)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"format version {version} is not supported (expected 1.0 or 2.0)")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
    except (ValueError, OSError, EOFError, SyntaxError) as error:
        raise LensDataError(path, f"not a readable .npy file (corrupt or truncated): {error}") from None
    if not all(n >= 0 for n in shape):
        raise LensDataError(path, f"not a readable .npy file (corrupt or truncated): header shape {shape} is negative")
    return shape, fortran_order, dtype


def _load_object_npy(handle, path: Path, shape: tuple) -> np.ndarray:
    """The object array of an open object-dtype .npy (pickle body) through the numpy-only unpickler."""
    try:
        array = _NumpyOnlyUnpickler(handle.read()).load()
    except _Refused as error:
        raise LensDataError(path, f"refused to unpickle: {error}") from None
    except Exception as error:  # a damaged pickle fails in many ways; all mean the same here
        raise LensDataError(path, f"not a readable object .npy file (corrupt or truncated): {error!r}") from None
    if not isinstance(array, _PickledArray) or not array.dtype.hasobject or array.shape != shape:
        raise LensDataError(path, f"pickle body does not hold the object array of shape {shape} its header announces")
    return _as_plain_ndarray(array)


def load_npy(path: PathLike) -> np.ndarray:
    """Load a .npy file, checking its header against the file's size before reading any data; object
    arrays go through the numpy-only unpickler, never `pickle.load`."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise LensDataError(path, symlink_problem(path) or f"cannot open the file: {error.strerror}") from None
    with handle:
        shape, _, dtype = _read_npy_header(handle, path)
        if dtype.hasobject:
            return _load_object_npy(handle, path, shape)
        declared, available = math.prod(shape) * dtype.itemsize, os.fstat(handle.fileno()).st_size - handle.tell()
        if declared > available:
            raise LensDataError(
                path,
                f"not a readable .npy file (corrupt or truncated): its header declares shape {shape} {dtype} "
                f"({declared:,} bytes) but only {available:,} bytes follow it",
            )
        handle.seek(0)
        try:
            return np.lib.format.read_array(handle, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise LensDataError(path, f"not a readable .npy file (corrupt or truncated): {error}") from None


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


def read_fits_image(path: PathLike, expected_shape: Optional[Sequence[int]] = None, hdu: Optional[int] = None) -> np.ndarray:
    """Read the first image HDU of a FITS file (or HDU number `hdu`) with astropy (BSCALE/BZERO applied, row order
    kept).

    datasets' Pillow path flips rows and ignores the scaling keywords, so FITS never goes there.
    """
    from astropy.io import fits

    path = Path(path)
    data = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns before it raises on truncation; the error says it all
            with fits.open(path, memmap=False) as hdus:
                if hdu is not None:
                    if isinstance(hdu, bool) or not isinstance(hdu, int) or not 0 <= hdu < len(hdus):
                        raise LensDataError(path, f"has HDUs 0 to {len(hdus) - 1}; HDU {hdu!r} does not exist")
                    if not (hdus[hdu].is_image and hdus[hdu].size):
                        raise LensDataError(path, f"HDU {hdu} holds no image data")
                chosen = [hdus[hdu]] if hdu is not None else hdus
                for candidate in chosen:
                    if candidate.is_image and candidate.size:
                        _check_fits_data_fits_in_file(candidate, path)
                        data = np.array(candidate.data)
                        break
    except LensDataError:
        raise
    except OSError as error:
        raise LensDataError(path, symlink_problem(path) or f"not a readable FITS file (corrupt or truncated): {error}") from None
    except Exception as error:
        raise LensDataError(path, f"not a readable FITS file (corrupt or truncated): {error}") from None
    if data is None:
        raise LensDataError(path, "FITS file holds no image data in any HDU")
    image = to_finite_float32(to_channel_first(data, path, expected_shape), path)
    if expected_shape is not None:
        check_shape(image, expected_shape, path)
    return image


# A tile-compressed FITS image may expand this many times its file's size, and no more (real images
# compress a few times; a far higher ratio is a decompression bomb).
MAX_FITS_COMPRESSION_RATIO = 1000


def _check_fits_data_fits_in_file(hdu, path: Path) -> None:
    """Refuse an HDU whose header declares more data than the file holds (or, compressed, could expand to),
    before astropy allocates it."""
    from astropy.io import fits

    declared, file_size = hdu.size, os.path.getsize(path)
    if isinstance(hdu, fits.CompImageHDU):
        available, what = MAX_FITS_COMPRESSION_RATIO * file_size, f"{MAX_FITS_COMPRESSION_RATIO} times the file's size"
    else:
        available = max(file_size - hdu.fileinfo()["datLoc"], 0)
        what = f"the {available:,} bytes that follow it"
    if declared > available:
        shape = tuple(hdu.header.get(f"NAXIS{axis}", 0) for axis in range(hdu.header.get("NAXIS", 0), 0, -1))
        raise LensDataError(
            path,
            f"not a readable FITS file (corrupt or truncated): its header declares a {shape} image of BITPIX "
            f"{hdu.header.get('BITPIX')} ({declared:,} bytes), more than {what}",
        )


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
    flux_lensed_image_in_sigma`; UTF-8, a BOM allowed), checking every row so a typo never becomes a label."""
    path = Path(path)
    if not path.is_file():
        raise LensDataError(
            path, symlink_problem(path) or "catalogue file not found (expected classifications.csv with ID and is_lens columns)"
        )
    raw = path.read_bytes()
    raw = raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise LensDataError(
            path, f"line {line}: byte {raw[error.start]:#04x} is not UTF-8 text (save the catalogue as UTF-8)"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
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
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            if len(fields) != len(header):
                raise LensDataError(path, f"line {reader.line_num} has {len(fields)} fields, the header has {len(header)}")
            rows.append(_parse_bologna_row(path, reader.line_num, fields, column, seen))
    except csv.Error as error:
        raise LensDataError(path, f"line {reader.line_num}: not valid CSV: {error}") from None
    if not rows:
        raise LensDataError(path, "catalogue has a header but no rows")
    return rows


# A catalogue ID: digits, optionally with a zero fraction as spreadsheets write integers ("100003.0").
_CATALOGUE_ID = re.compile(r"(\d+)(?:\.0*)?", re.ASCII)


def _parse_bologna_row(path: Path, line_number: int, fields: list, column: dict, seen: set) -> BolognaRow:
    def field(name: str) -> str:
        return fields[column[name]].strip()

    match = _CATALOGUE_ID.fullmatch(field("ID"))
    if match is None:
        raise LensDataError(
            path, f"line {line_number}: ID {field('ID')!r} is not a non-negative integer (expected digits such as 100003)"
        )
    object_id = int(match.group(1))
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
