"""Turning a notebook function and its items into what ``sshmr.run`` ships.

A function defined in the notebook (``__main__``), a lambda or a closure is cloudpickled by
value into a file of the code bundle; a function from an importable module outside the
Python installation is pickled by reference and its module (its whole top-level package)
rides along, as ``target.code_of`` does for job classes; modules of the installation
(stdlib, site-packages) must be installed on the hosts. cloudpickle's own pure-Python
files go into the bundle too, so the hosts need nothing but ``python3``.

Items that JSON carries exactly are sent as JSON; any other item is cloudpickled and sent
as ``{PICKLED_KEY: base64}`` (the hosts trust the master: it is the user).
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..engine.target import Code, code_of
from ..errors import TargetError
from ..function import PICKLED_KEY, FunctionExecutor
from ..remote.protocol import is_plain_json


def _cloudpickle():
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - a dependency of the notebook extra
        raise TargetError("mapping a function needs cloudpickle; pip install"
                          " 'sshmr[notebook]'") from None
    return cloudpickle


def ship_function(fn: Callable[[Any], Any]) -> tuple[FunctionExecutor, Code]:
    """The executor and the code that run ``fn(item)`` on the hosts."""
    if not callable(fn):
        raise TargetError(f"{fn!r} is not callable; pass a function of one item")
    name = getattr(fn, "__qualname__", None) or repr(fn)
    try:
        data = _cloudpickle().dumps(fn)
    except Exception as exc:  # noqa: BLE001 - pickling can raise anything
        raise TargetError(f"cannot ship {name}: cloudpickle failed ({type(exc).__name__}:"
                          f" {exc}); do not capture open files, locks or sockets") from None
    fn_file = f"sshmr_fn_{hashlib.sha256(data).hexdigest()[:16]}.pkl"
    files = dict(cloudpickle_files())
    files.update(_module_files(fn))
    files[fn_file] = data
    python = "{}.{}".format(*sys.version_info[:2])
    return FunctionExecutor(fn_file, name, python), Code("sshmr.function", "FunctionExecutor",
                                                         files)


def cloudpickle_files() -> dict[str, bytes]:
    """cloudpickle's package, as files of the bundle's user code directory."""
    root = Path(_cloudpickle().__file__).parent
    return {f"cloudpickle/{p.relative_to(root)}": p.read_bytes()
            for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}


def _module_files(fn: Callable[[Any], Any]) -> dict[str, bytes]:
    module = getattr(fn, "__module__", None)
    if not module or module == "__main__" or module.split(".")[0] in ("sshmr", "cloudpickle"):
        return {}
    path = getattr(sys.modules.get(module), "__file__", None)
    if not path or not path.endswith(".py") or _installed(path):
        return {}  # builtin or installed: the hosts import their own copy
    try:
        return dict(code_of(fn).files)  # type: ignore[arg-type]
    except TargetError:
        return {}


def _installed(path: str) -> bool:
    real = os.path.realpath(path)
    paths = sysconfig.get_paths()
    roots = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")
             if k in paths}
    return any(real.startswith(root + os.sep) for root in roots)


def encode_item(item: Any) -> Any:
    """``item`` as a job payload: itself when JSON carries it exactly, else pickled."""
    if is_plain_json(item) and not (type(item) is dict and PICKLED_KEY in item):
        return item
    try:
        data = _cloudpickle().dumps(item)
    except Exception as exc:  # noqa: BLE001
        raise TargetError(f"cannot ship item {item!r:.60}: cloudpickle failed"
                          f" ({type(exc).__name__}: {exc})") from None
    return {PICKLED_KEY: base64.b64encode(data).decode()}
