"""Load one params.yaml section into a frozen dataclass, failing loudly on any key mismatch.

Every stage reads exactly one section (plus, rarely, a named key of another). A missing key,
an unknown (e.g. misspelled) key or a value of the wrong type raises ParamsError naming the
key and the file, so `dvc exp run -S train.lrr=1e-3` fails before any work starts. Values
the types cannot check (a negative step count, a stride past the window) are refused by the
dataclass's own __post_init__ with `refuse_invalid`, so every loader of a section checks them.
A key given twice in one mapping is refused too (YAML would silently keep the last one).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """A params.yaml section does not match the dataclass a stage expects."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (plain YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ParamsError(
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                    f"(first at line {seen[key].start_mark.line + 1}): which one is meant?"
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def read_params(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return data


def _type_ok(value: Any, annotation: Any) -> bool:
    """A shallow check of a YAML value against a field annotation."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def section_from_mapping(raw: Any, cls: type[T], where: str) -> T:
    """Build `cls` from a mapping; `where` (e.g. "params.yaml:train") names it in errors."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {', '.join(unknown)}; expected keys: {', '.join(fields)}")
    missing = [name for name, f in fields.items() if name not in raw and _required(f)]
    if missing:
        raise ParamsError(f"{where}: missing key(s) {', '.join(missing)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        if dataclasses.is_dataclass(hints[name]):  # a nested sub-section, e.g. generate.openai
            values[name] = section_from_mapping(value, hints[name], f"{where}.{name}")
            continue
        if not _type_ok(value, hints[name]):
            raise ParamsError(f"{where}.{name}: expected {_type_name(hints[name])}, got {value!r}")
        values[name] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**values)
    except ParamsError as exc:  # from the dataclass's __post_init__: "key: why, got value"
        raise ParamsError(f"{where}.{exc}") from None


def refuse_invalid(params: Any, checks: list[tuple[str, bool, str]]) -> None:
    """Raise ParamsError for the first failed check `(key, ok, what a valid value is)`, naming
    the key and its value; called from a params dataclass's __post_init__."""
    for key, ok, expected in checks:
        if not ok:
            raise ParamsError(f"{key}: {expected}, got {getattr(params, key)!r}")


def load_section(path: str | Path, section: str, cls: type[T]) -> T:
    """Read `section` of the params file at `path` into the frozen dataclass `cls`."""
    params = read_params(path)
    if section not in params:
        raise ParamsError(f"{path}: missing section '{section}'")
    return section_from_mapping(params[section], cls, f"{path}:{section}")


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
