"""Check a SageMaker request against botocore's own service model, as SageMaker's front end does.

Every rule comes from ``botocore/data/sagemaker/2017-07-24/service-2.json``, the same file boto3 builds its
client from, so each rejection can be traced to a shape of that file (``EntityName``,
``CustomerMetadataValue``...). botocore checks only types, required members and minimum lengths before
sending; SageMaker also checks maximum lengths, patterns, enums, value ranges and collection sizes, and
refuses the whole request with one ``ValidationException`` listing every broken rule::

    2 validation errors detected: Value 'bad name_x' at 'modelPackageGroupName' failed to satisfy
    constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}; ...

Paths use SageMaker's spelling: members in lowerCamelCase joined by ``.``, list items as ``tags.1.member``.
Constraints on the items of a scalar list or on the keys and values of a map are reported once for the
collection, bracketed (``Map value must satisfy constraint: [...]``). Values of sensitive shapes are not
echoed. A JSON value of the wrong type, or a member the model does not define, is a
``SerializationException`` instead: SageMaker cannot even read such a request.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import botocore.session
from botocore.model import (
    ListShape,
    MapShape,
    OperationModel,
    OperationNotFoundError,
    ServiceModel,
    Shape,
    StructureShape,
)

from .errors import SerializationError, UnknownOperationError, ValidationError
from .java_regex import compile_java

_CONTAINERS = ("structure", "list", "map")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "blob": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "timestamp": (int, float),  # botocore sends epoch seconds for the JSON protocol
    "structure": (dict,),
    "map": (dict,),
    "list": (list,),
}


@functools.lru_cache(maxsize=1)
def service_model() -> ServiceModel:
    """The SageMaker service model of the installed botocore (loaded once)."""
    return botocore.session.get_session().get_service_model("sagemaker")


def operation_model(operation: str) -> OperationModel:
    """The model of ``operation``; ``UnknownOperationError`` when SageMaker has no such operation."""
    try:
        return service_model().operation_model(operation)
    except OperationNotFoundError:
        raise UnknownOperationError(f"Unknown operation SageMaker.{operation}") from None


def validate_request(operation: str, params: object) -> dict[str, Any]:
    """Return ``params`` if SageMaker would accept them for ``operation``, else raise what it would."""
    shape = operation_model(operation).input_shape
    if shape is None:  # pragma: no cover - every SageMaker operation has an input shape
        return {}
    violations: list[str] = []
    _check(shape, params, "", violations)
    if violations:
        count = len(violations)
        noun = "error" if count == 1 else "errors"
        raise ValidationError(f"{count} validation {noun} detected: " + "; ".join(violations))
    assert isinstance(params, dict)
    return params


def _check(shape: Shape, value: object, path: str, out: list[str]) -> None:
    _check_type(shape, value, path)
    if isinstance(shape, StructureShape):
        _check_structure(shape, value, path, out)
    elif isinstance(shape, ListShape):
        _check_list(shape, value, path, out)
    elif isinstance(shape, MapShape):
        _check_map(shape, value, path, out)
    else:
        out.extend(_violation(shape, value, path, rule) for rule in _scalar_rules(shape, value))


def _check_structure(shape: StructureShape, value: Any, path: str, out: list[str]) -> None:
    unknown = [name for name in value if name not in shape.members]
    if unknown:
        where = f" at '{path}'" if path else ""
        raise SerializationError(f"Unknown member '{unknown[0]}'{where}: {shape.name} has no such member")
    present = [name for name, item in value.items() if item is not None]
    if shape.metadata.get("union") and len(present) != 1:
        out.append(_violation(shape, value, path, "Member must have exactly one member set"))
    for name, member in shape.members.items():
        member_path = f"{path}.{_camel(name)}" if path else _camel(name)
        if name in present:
            _check(member, value[name], member_path, out)
        elif name in shape.required_members:
            out.append(f"Value null at '{member_path}' failed to satisfy constraint: Member must not be null")


def _check_list(shape: ListShape, value: Any, path: str, out: list[str]) -> None:
    out.extend(_violation(shape, value, path, rule) for rule in _size_rules(shape, len(value)))
    member = shape.member
    if member.type_name in _CONTAINERS:
        for index, item in enumerate(value, start=1):
            _check(member, item, f"{path}.{index}.member", out)
        return
    rules = _union(_item_rules(member, item, f"{path}.{index}") for index, item in enumerate(value, 1))
    if rules:
        out.append(_violation(shape, value, path, f"Member must satisfy constraint: [{', '.join(rules)}]"))


def _check_map(shape: MapShape, value: Any, path: str, out: list[str]) -> None:
    out.extend(_violation(shape, value, path, rule) for rule in _size_rules(shape, len(value)))
    key_rules = _union(_scalar_rules(shape.key, key) for key in value)
    if key_rules:
        rules = ", ".join(key_rules)
        out.append(_violation(shape, value, path, f"Map keys must satisfy constraint: [{rules}]"))
    if shape.value.type_name in _CONTAINERS:
        for key, item in value.items():
            _check(shape.value, item, f"{path}.{key}", out)
        return
    value_rules = _union(_item_rules(shape.value, item, f"{path}.{key}") for key, item in value.items())
    if value_rules:
        rules = ", ".join(value_rules)
        out.append(_violation(shape, value, path, f"Map value must satisfy constraint: [{rules}]"))


def _item_rules(shape: Shape, value: object, path: str) -> list[str]:
    """The rules a scalar item of a list or map breaks (after checking it is readable at all)."""
    _check_type(shape, value, path)
    return _scalar_rules(shape, value)


def _check_type(shape: Shape, value: object, path: str) -> None:
    expected = _JSON_TYPES[shape.type_name]
    if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
        where = f" at '{path}'" if path else ""
        raise SerializationError(
            f"Unexpected JSON {_json_kind(value)}{where}: {shape.name} expects a {shape.type_name}"
        )


def _scalar_rules(shape: Shape, value: Any) -> list[str]:
    """The messages of every constraint of a scalar ``shape`` that ``value`` breaks, in SageMaker's order."""
    meta = shape.metadata
    if shape.type_name == "string":
        rules = _size_rules(shape, len(value.encode("utf-16-le")) // 2)  # Java counts UTF-16 units
        pattern = meta.get("pattern")
        if pattern is not None and not compile_java(pattern).fullmatch(value):
            rules.append(f"Member must satisfy regular expression pattern: {pattern}")
        enum = meta.get("enum")
        if enum and value not in enum:
            rules.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
        return rules
    rules = []
    if shape.type_name in ("integer", "long", "float", "double"):
        if "min" in meta and value < meta["min"]:
            rules.append(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            rules.append(f"Member must have value less than or equal to {meta['max']}")
    return rules


def _size_rules(shape: Shape, size: int) -> list[str]:
    meta = shape.metadata
    rules = []
    if "min" in meta and size < meta["min"]:
        rules.append(f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and size > meta["max"]:
        rules.append(f"Member must have length less than or equal to {meta['max']}")
    return rules


def _violation(shape: Shape, value: object, path: str, rule: str) -> str:
    shown = "Value" if shape.metadata.get("sensitive") else f"Value '{_java_text(value)}'"
    return f"{shown} at '{path}' failed to satisfy constraint: {rule}"


def _union(rule_lists: Iterable[list[str]]) -> list[str]:
    """Every distinct rule, in first-seen order."""
    return list(dict.fromkeys(rule for rules in rule_lists for rule in rules))


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _java_text(value: object) -> str:
    """Render a value as Java's ``toString`` would, as SageMaker's messages do."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_java_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={_java_text(item)}" for key, item in value.items()) + "}"
    return "null" if value is None else str(value)


def _json_kind(value: object) -> str:
    kinds: list[tuple[type, str]] = [(bool, "boolean"), (str, "string"), (int, "number"), (float, "number")]
    kinds += [(list, "array"), (dict, "object")]
    return next((kind for cls, kind in kinds if isinstance(value, cls)), "null")
