"""A restricted unpickler for dataset files: plain data in, never code.

``pickle.load`` runs whatever callables a file names (``os.system``, ``eval``,
``subprocess.Popen``...): a planted ``cifar-10-batches-py/data_batch_1`` would run
code as soon as it is read, MD5 check or not. :func:`load_pickle` reads pickles with
an unpickler whose ``find_class`` admits only what array datasets need:

* the containers and scalars pickle encodes natively (``dict``, ``list``, ``tuple``,
  ``str``, ``bytes``, ``int``, ``float``, ``bool``, ``None``);
* numpy array reconstruction (``numpy[._]core.multiarray._reconstruct``,
  ``numpy.ndarray``, ``numpy.dtype``, ``numpy[._]core.multiarray.scalar``,
  ``numpy[._]core.numeric._frombuffer`` for protocol 5), restricted to dtypes without
  Python objects;
* ``_codecs.encode(text, "latin1")``, which protocols 0-2 use to write ``bytes``.

Anything else (another global, an object-dtype array, a persistent id) raises
:class:`UnsafePickleError` naming the file and the refused global; the loaded object is
then checked again, so only the types above can come out.
"""
from __future__ import annotations

import codecs
import io
import os
import pickle
from typing import Any, Callable

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle asked for something a data file has no business with (code, objects)."""


def _plain_dtype(dtype: Any) -> np.dtype:
    dt = dtype if isinstance(dtype, np.dtype) else None
    if dt is None or dt.hasobject:
        raise UnsafePickleError(f"array dtype {dtype!r} holds Python objects")
    return dt


def _reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"array subtype {subtype!r} is not numpy.ndarray")
    return _multiarray._reconstruct(np.ndarray, shape, dtype_code)


def _dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    if not isinstance(obj, str):
        raise UnsafePickleError(f"dtype spec {obj!r} is not a type code")
    return _plain_dtype(np.dtype(obj, align, copy))


def _scalar(dtype: Any, data: Any = None) -> Any:
    _plain_dtype(dtype)
    if not isinstance(data, bytes):
        raise UnsafePickleError("numpy scalar without its bytes")
    return _multiarray.scalar(dtype, data)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    _plain_dtype(dtype)
    return _numeric._frombuffer(buf, dtype, shape, order)


def _encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise UnsafePickleError("_codecs.encode is only accepted as encode(str, 'latin1')")
    return codecs.encode(text, "latin1")


_NP_CORE = ("numpy.core", "numpy._core")
#: ``(module, name)`` -> the callable the unpickler gets instead.
ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any] | type] = {
    **{(f"{m}.multiarray", "_reconstruct"): _reconstruct for m in _NP_CORE},
    **{(f"{m}.multiarray", "scalar"): _scalar for m in _NP_CORE},
    **{(f"{m}.numeric", "_frombuffer"): _frombuffer for m in _NP_CORE},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
}

_PLAIN = (str, bytes, bytearray, int, float, bool, type(None))


class RestrictedUnpickler(pickle.Unpickler):
    """:class:`pickle.Unpickler` that resolves only :data:`ALLOWED_GLOBALS`."""

    def __init__(self, file: io.BufferedIOBase, *, source: str, encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"{self.source} asks the unpickler for {module}.{name}, which a data file never needs; "
                "it was refused and nothing was run (the file is damaged or was planted: replace it "
                "with the official release)")
        return found

    def load(self) -> Any:
        try:
            return super().load()
        except UnsafePickleError as err:
            if self.source in str(err):
                raise
            raise UnsafePickleError(f"{self.source}: {err}; refused, nothing was run") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source} uses pickle persistent ids, which data files never need")


def _check_plain(obj: Any, source: str) -> None:
    """Refuse anything but containers of plain values and object-free numpy data (iteratively)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, _PLAIN):
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, (np.ndarray, np.generic)):
            if item.dtype.hasobject:
                raise UnsafePickleError(f"{source} holds an array of Python objects; data files hold numbers")
        else:
            raise UnsafePickleError(f"{source} holds a {type(item).__name__}, which a data file never holds")


def load_pickle(path: str | os.PathLike, *, encoding: str = "latin1") -> Any:
    """Read the pickle at ``path`` with :class:`RestrictedUnpickler`.

    Raises:
        UnsafePickleError: (a :class:`ValueError`) the file asks for anything but plain data.
        ValueError: the file is not a readable pickle (truncated, another format).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            obj = RestrictedUnpickler(f, source=path, encoding=encoding).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
                AttributeError, UnicodeDecodeError, MemoryError) as err:
            raise ValueError(f"{path} is not a readable pickle of plain data ({type(err).__name__}: {err})") \
                from None
    _check_plain(obj, path)
    return obj


def loads_pickle(data: bytes, *, source: str = "<bytes>", encoding: str = "latin1") -> Any:
    """:func:`load_pickle` for bytes already in memory."""
    obj = RestrictedUnpickler(io.BytesIO(data), source=source, encoding=encoding).load()
    _check_plain(obj, source)
    return obj
