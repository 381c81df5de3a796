"""Schema-validated dict records: ``BaseData`` and ``Choices``.

A subclass declares its fields as class annotations::

    class Point(BaseData):
        x: int                 # required
        label: (str, None)     # optional, with a default

or by overriding ``get_keys() -> (required, optional)``. On the class, ``Point.x == "x"`` (the key,
also as ``Point.f_x``); on an instance, ``p.x`` is the value (``None`` when unset).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar

from nodejobs.errors import InvalidInputError, UnknownFieldError

_MISSING = object()


class Choices:
    """A closed set of string values declared as ``c_<name> = "value"`` constants."""

    _values: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._values = frozenset(v for k, v in vars(cls).items() if k.startswith("c_"))

    @classmethod
    def values(cls) -> frozenset[str]:
        return cls._values


class _Field:
    """Class access gives the key; instance access gives the value or ``None``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self.name
        return dict.get(obj, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        obj[self.name] = value


def _check_type(cls_name: str, key: str, expected: Any, value: Any) -> Any:
    """Return ``value`` converted to ``expected`` or raise naming the field and value."""
    if value is None:
        return None
    if isinstance(expected, type) and issubclass(expected, Choices):
        if not isinstance(value, str) or value not in expected.values():
            allowed = ", ".join(sorted(expected.values()))
            raise InvalidInputError(f"{cls_name}.{key}: {value!r} is not one of: {allowed}")
        return value
    if isinstance(expected, type) and issubclass(expected, BaseData):
        if isinstance(value, expected):
            return value
        if isinstance(value, dict):
            return expected(value)
        raise TypeError(f"{cls_name}.{key}: expected {expected.__name__} or dict, got {value!r}")
    if expected is datetime:
        return _to_utc(cls_name, key, value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool):
        raise TypeError(f"{cls_name}.{key}: expected int, got bool {value!r}")
    if expected is not Any and not isinstance(value, expected):
        raise TypeError(
            f"{cls_name}.{key}: expected {getattr(expected, '__name__', expected)}, "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def _to_utc(cls_name: str, key: str, value: Any) -> datetime:
    try:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                return value.replace(tzinfo=timezone.utc)
            return value.astimezone(timezone.utc)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidInputError(f"{cls_name}.{key}: {value!r} is not a representable time ({exc})") from None
    if isinstance(value, str):
        try:
            return _to_utc(cls_name, key, datetime.fromisoformat(value))
        except ValueError:
            pass
    raise TypeError(f"{cls_name}.{key}: expected a datetime, got {type(value).__name__} {value!r}")


def _normalise(spec: Any) -> tuple[Any, Any]:
    """``type`` -> (type, missing); ``(type, default)`` -> (type, default)."""
    if isinstance(spec, tuple) and len(spec) == 2:
        return spec[0], spec[1]
    return spec, _MISSING


_Data = TypeVar("_Data", bound="BaseData")


class BaseData(dict):
    """A dict whose keys and value types follow the class schema.

    Construction and item assignment validate; unknown keys are kept unless the class sets
    ``_strict = True`` (then they are an error). ``clean()`` drops unknown keys.
    """

    _strict: ClassVar[bool] = False
    _required: ClassVar[dict[str, Any]] = {}
    _optional: ClassVar[dict[str, Any]] = {}
    _types: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        required, optional = cls.get_keys()
        cls._required = {k: _normalise(v)[0] for k, v in required.items()}
        cls._optional = dict(optional)
        cls._types = {**cls._required, **{k: _normalise(v)[0] for k, v in optional.items()}}
        for key in cls._types:
            if not isinstance(vars(cls).get(key), _Field):
                setattr(cls, key, _Field(key))
            setattr(cls, f"f_{key}", key)

    @classmethod
    def get_keys(cls) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return ``(required, optional)``: field name -> type (optional: type or (type, default))."""
        required: dict[str, Any] = {}
        optional: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name, spec in vars(klass).get("__annotations__", {}).items():
                if name.startswith("_") or getattr(spec, "__origin__", None) is ClassVar:
                    continue
                if isinstance(spec, str):
                    raise TypeError(
                        f"{cls.__name__}.{name}: string annotation {spec!r}; "
                        "schema modules must not use 'from __future__ import annotations'"
                    )
                kind, default = _normalise(spec)
                if default is _MISSING and not isinstance(spec, tuple):
                    required[name] = kind
                    optional.pop(name, None)
                else:
                    optional[name] = (kind, default)
                    required.pop(name, None)
        return required, optional

    def __init__(self, data: dict | None = None, **fields: Any) -> None:
        super().__init__()
        merged = {**(data or {}), **fields}
        for key, value in merged.items():
            self[key] = value
        missing = [k for k in self._required if dict.get(self, k) is None]
        if missing:
            raise InvalidInputError(f"{type(self).__name__}: missing required field(s): {', '.join(missing)}")

    @classmethod
    def trusted(cls: type[_Data], data: dict) -> _Data:
        """Wrap data already validated (e.g. read back from the database) without checking it again."""
        obj = cls.__new__(cls)
        dict.update(obj, data)
        return obj

    def __setitem__(self, key: str, value: Any) -> None:
        expected = self._types.get(key, _MISSING)
        if expected is _MISSING:
            if self._strict:
                known = ", ".join(sorted(self._types))
                raise UnknownFieldError(f"{type(self).__name__}: unknown field {key!r} (known: {known})")
            super().__setitem__(key, value)
            return
        super().__setitem__(key, _check_type(type(self).__name__, key, expected, value))

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def clean(self: _Data) -> _Data:
        """Drop keys the schema does not know; return self."""
        for key in [k for k in self if k not in self._types]:
            del self[key]
        return self

    def with_defaults(self: _Data) -> _Data:
        """Return a copy with every optional field's default filled in where unset."""
        out = type(self).trusted(dict(self))
        for key, spec in self._optional.items():
            _, default = _normalise(spec)
            if key not in out and default is not _MISSING:
                dict.__setitem__(out, key, default)
        return out

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"
