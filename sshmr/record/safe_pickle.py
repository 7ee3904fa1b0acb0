"""Unpickling a function run's result without letting a host run code on the master.

A pickle is a program: loading one may call anything it names. A result comes from a host,
and a host may be compromised (its per-host key lets it sign whatever it likes), so
``loads`` runs the pickle with a ``find_class`` that names only:

- value types of the standard library (containers, numbers, ``datetime``, ``decimal``,
  ``fractions``, ``uuid``, ``pathlib``, ``collections``), built-in exceptions, and NumPy's
  arrays, dtypes and scalars;
- classes of the code the run shipped (its own modules), by reference;
- classes the notebook sent by value (cloudpickle): the master's own class objects, found by
  cloudpickle's tracker id, never rebuilt; the master's classes are not changed.

Any other name (``os.system``, ``getattr``, a code object, the methods a class carries, a
class this process did not send) loads as ``Inert``: a stand-in that does nothing when
called, so what a pickle builds from it is inert too. Functions in a result therefore come
back as stand-ins, and a pickle that cannot be loaded at all raises ``RefusedPickle``.
"""

from __future__ import annotations

import builtins
import io
import pickle
from collections.abc import Iterable
from typing import Any

SAFE = {
    "builtins": {"set", "frozenset", "complex", "bytearray", "bytes", "slice", "range", "list",
                 "dict", "tuple", "str", "int", "float", "bool", "object"},
    "collections": {"OrderedDict", "defaultdict", "deque", "Counter"},
    "datetime": {"date", "datetime", "time", "timedelta", "timezone"},
    "decimal": {"Decimal"},
    "fractions": {"Fraction"},
    "uuid": {"UUID", "SafeUUID"},
    "pathlib": {"Path", "PosixPath", "PurePath", "PurePosixPath", "WindowsPath",
                "PureWindowsPath"},
    "copyreg": {"_reconstructor"},
    "_codecs": {"encode"},
}
NUMPY = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}
CLOUDPICKLE = ("cloudpickle.cloudpickle", "cloudpickle.cloudpickle_fast")


class RefusedPickle(pickle.UnpicklingError):
    """A pickled result that cannot be loaded."""


class Inert:
    """What a name a result may not load becomes: calling it does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Inert:
        return Inert()

    def __repr__(self) -> str:
        return "<not loaded: a result named something the master does not load>"


def _tracked(class_tracker_id: str) -> type:
    from cloudpickle import cloudpickle as cp

    return cp._DYNAMIC_CLASS_TRACKER_BY_ID.get(class_tracker_id) or Inert


def _skeleton_class(type_constructor: Any, name: Any, bases: Any, type_kwargs: Any,
                    class_tracker_id: str, extra: Any = None) -> type:
    return _tracked(class_tracker_id)


def _skeleton_enum(bases: Any, name: Any, qualname: Any, members: Any, module: Any,
                   class_tracker_id: str, extra: Any = None) -> type:
    return _tracked(class_tracker_id)


def _keep_class(obj: Any, state: Any) -> Any:
    return obj  # the master's own class stays as it is


_CLOUDPICKLE_STANDINS = {
    "_make_skeleton_class": _skeleton_class, "_make_skeleton_enum": _skeleton_enum,
    "_class_setstate": _keep_class, "_function_setstate": lambda obj, state: None,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, modules: set[str]) -> None:
        super().__init__(io.BytesIO(data))
        self.modules = modules

    def find_class(self, module: str, name: str) -> Any:
        if name in SAFE.get(module, ()):
            return super().find_class(module, name)
        if module == "builtins":
            obj = getattr(builtins, name, None)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                return obj
        elif module.split(".")[0] == "numpy" and name in NUMPY:
            return super().find_class(module, name)
        elif module in CLOUDPICKLE and name in _CLOUDPICKLE_STANDINS:
            return _CLOUDPICKLE_STANDINS[name]
        elif module.split(".")[0] in self.modules:  # the run's own code: its classes
            obj = super().find_class(module, name)
            if isinstance(obj, type) and obj.__module__ == module:
                return obj
        return Inert


def loads(data: bytes, modules: Iterable[str] = ()) -> Any:
    """Unpickle a result, loading only what the module docstring lists; ``modules`` are the
    run's own top-level modules, whose classes come back by reference."""
    try:
        return _Unpickler(data, set(modules)).load()
    except Exception as exc:  # noqa: BLE001 - a broken pickle is an unreadable result
        raise RefusedPickle(f"the result cannot be unpickled ({type(exc).__name__}: {exc})"
                            ) from None
