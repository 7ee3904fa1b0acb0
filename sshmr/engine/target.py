"""TARGET loading: ``path/to/file.py:Class`` or ``package.module:Class`` -> a class and its code.

The code found here is what the hosts receive: a single file for ``file.py:Class``, the
whole top-level package (``*.py`` only) for ``package.module:Class``. The same loader
serves ``--partitioner FILE.py:Class``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TargetError

MAX_CODE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Code:
    """The user's code as shipped: import ``module`` and take ``cls_name`` from it."""

    module: str
    cls_name: str
    files: dict[str, bytes] = field(default_factory=dict)  # paths relative to the code root


def load_target(spec: str, base: type, what: str = "TARGET",
                accept: Callable[[type], bool] | None = None) -> tuple[type, Code]:
    """Import ``spec`` and check it names a subclass of ``base`` (or a class ``accept``s)."""
    if ":" not in spec:
        raise TargetError(
            f"{what} {spec!r}: expected path/to/file.py:Class or package.module:Class")
    where, cls_name = spec.rsplit(":", 1)
    if where.endswith(".py") or os.sep in where or "/" in where:
        module, code = _load_file(spec, where)
    else:
        module, code = _load_module(spec, where)
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise TargetError(f"{what} {spec!r}: {where} has no attribute {cls_name!r}")
    if not (isinstance(cls, type) and (issubclass(cls, base) or (accept and accept(cls)))):
        raise TargetError(f"{what} {spec!r}: {cls_name} is not a subclass of sshmr.{base.__name__}")
    return cls, Code(code.module, cls_name, code.files)


def code_of(cls: type) -> Code:
    """The code to ship for a class defined in a file or package (for ``sshmr.run``)."""
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if not path:
        raise TargetError(f"cannot find the source file of {cls.__qualname__}; define it in a .py"
                          " file or a package")
    if cls.__module__ == "__main__" or "." not in cls.__module__:
        stem = Path(path).stem
        return Code(stem, cls.__qualname__, {f"{stem}.py": Path(path).read_bytes()})
    top = cls.__module__.split(".")[0]
    return Code(cls.__module__, cls.__qualname__, _package_files(sys.modules[top], cls.__module__))


def _load_file(spec: str, where: str):
    path = Path(where).resolve()
    if not path.is_file():
        raise TargetError(f"TARGET {spec!r}: file {where} does not exist")
    name = path.stem
    if not name.isidentifier():
        raise TargetError(f"TARGET {spec!r}: {path.name} is not an importable module name")
    sys.path.insert(0, str(path.parent))
    try:
        module_spec = importlib.util.spec_from_file_location(name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        hint = ""
        if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == "mrjob":
            hint = "; it is a mrjob job: pip install 'sshmr[mrjob]' where you run sshmr"
        raise TargetError(f"TARGET {spec!r}: importing {where} failed: "
                          f"{type(exc).__name__}: {exc}{hint}") from None
    finally:
        sys.path.remove(str(path.parent))
    return module, Code(name, "", {f"{name}.py": path.read_bytes()})


def _load_module(spec: str, where: str):
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(where)
    except Exception as exc:
        raise TargetError(f"TARGET {spec!r}: cannot import {where}: "
                          f"{type(exc).__name__}: {exc}") from None
    top = sys.modules[where.split(".")[0]]
    if not getattr(top, "__path__", None):
        path = getattr(module, "__file__", None)
        if not path:
            raise TargetError(f"TARGET {spec!r}: {where} has no source file to ship")
        return module, Code(where, "", {f"{where}.py": Path(path).read_bytes()})
    return module, Code(where, "", _package_files(top, spec))


def _package_files(top, spec: str) -> dict[str, bytes]:
    root = Path(list(top.__path__)[0])
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        data = path.read_bytes()
        total += len(data)
        if total > MAX_CODE_BYTES:
            raise TargetError(f"TARGET {spec!r}: package {root} holds more than "
                              f"{MAX_CODE_BYTES >> 20} MiB of .py files; ship a smaller package")
        files[str(Path(root.name) / path.relative_to(root))] = data
    return files
