"""Frozen, slotted records for the quick commands, without the ``dataclasses`` module.

``ls``, ``who`` and ``explain`` build their results from a handful of small immutable
records (``model.Socket``, ``Process``, ``Listener``, ``addr.Target`` ...). As
``@dataclass(frozen=True, slots=True)`` they cost ``who`` 14 ms of its ~55:
``import dataclasses`` is ~8 ms (it imports ``inspect``, which imports ``ast``, ``dis`` and
``tokenize``) and each decorated class ~0.7 ms (six methods compiled one by one, then a
second class for the slots). ``@record`` builds the same kind of class from the same
annotations with one compile per class (docs/design-notes.md, "Records without
dataclasses"; bench/README.md has the numbers).

What a record is, exactly:

- its fields are the class's own annotations, in order; a class attribute of the same name
  is the field's default (immutable values only: there is no ``default_factory``);
- ``__init__`` takes them positionally or by name; instances are frozen (assigning or
  deleting a field raises :class:`FrozenRecordError`, an ``AttributeError``) and slotted;
- ``==`` compares records of the same class field by field, ``hash`` hashes the fields,
  ``repr`` shows them, and ``pickle``/``copy`` rebuild through ``__init__``;
- :func:`replace` is ``dataclasses.replace`` for records.

Everything else on the class (methods, properties, docstrings) is kept as written.
Everywhere else homeport uses ``dataclasses``; a record is for the start-up path only.
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of every command
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_: object) -> Any:
        return lambda f: f


class FrozenRecordError(AttributeError):
    """Raised on assigning to, or deleting, a field of a record."""


@dataclass_transform(frozen_default=True)
def record(cls: type[T]) -> type[T]:
    """The frozen, slotted record class described above, made from ``cls``."""
    # Not inspect.get_annotations: importing inspect is what this module saves.
    names = tuple(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063
    body = {k: v for k, v in cls.__dict__.items() if k not in names}
    body.pop("__dict__", None)
    body.pop("__weakref__", None)
    body.update(
        __slots__=names,
        __match_args__=names,
        __init__=_init(cls, names),
        **_by_value(names),
        __setattr__=_frozen,
        __delattr__=_frozen,
    )
    meta: Any = type(cls)
    new: type[T] = meta(cls.__name__, cls.__bases__, body)
    new.__qualname__ = cls.__qualname__
    for name in ("__init__", "__eq__", "__hash__", "__repr__", "__reduce__"):
        getattr(new, name).__qualname__ = f"{cls.__qualname__}.{name}"
    return new


def _init(cls: type, names: tuple[str, ...]) -> Any:
    """``__init__(self, field, ..., field=default)``: the one method compiled per class (a
    generic one that loops over the fields is twice as slow to call, and ``ls`` builds
    12,000 sockets)."""
    defaults = {f"_d_{n}": cls.__dict__[n] for n in names if n in cls.__dict__}
    params = "".join(f", {n}=_d_{n}" if f"_d_{n}" in defaults else f", {n}" for n in names)
    sets = "".join(f"\n    _set(self, {n!r}, {n})" for n in names) or "\n    pass"
    scope: dict[str, Any] = {**defaults, "_set": object.__setattr__}
    exec(f"def __init__(self{params}):{sets}", scope)  # built from identifiers only
    return scope["__init__"]


def _by_value(names: tuple[str, ...]) -> dict[str, Any]:
    """``==``, ``hash``, ``repr`` and pickling, from the fields' values as one tuple (made
    in C by ``attrgetter``: no compile, and as fast to call as compiled ones)."""
    values: Callable[[Any], tuple[Any, ...]]
    if len(names) > 1:
        values = attrgetter(*names)
    else:
        one = attrgetter(*names) if names else None
        values = (lambda obj: (one(obj),)) if one else (lambda obj: ())

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(values(self))

    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(names, values(self), strict=True))
        return f"{self.__class__.__qualname__}({shown})"

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        return (self.__class__, values(self))

    return {"__eq__": __eq__, "__hash__": __hash__, "__repr__": __repr__, "__reduce__": __reduce__}


def _frozen(self: Any, name: str, *value: object) -> None:
    raise FrozenRecordError(f"{self.__class__.__name__} is frozen: cannot change {name!r}")


def replace(obj: T, **changes: Any) -> T:
    """A copy of the record ``obj`` with ``changes`` applied (as ``dataclasses.replace``)."""
    cls = obj.__class__
    for name in changes:
        if name not in cls.__slots__:  # type: ignore[attr-defined]
            raise TypeError(f"{cls.__name__} has no field {name!r}")
    values = {n: getattr(obj, n) for n in cls.__slots__}  # type: ignore[attr-defined]
    values.update(changes)
    return cls(**values)
