"""The base of every typed parameter model, and errors a person can read.

Each parameter group (``ingestion``, ``hog_svm``, ``cnn``) is a pydantic model that mirrors its
YAML file. Kedro validates a node's ``params:<key>`` input against the model its function
declares when the session starts, before the first node runs. The models are plain pydantic:
notebooks and scripts get the same checks.

Two conveniences for what people type:

- YAML 1.1 (used by the conf files and by ``--params``) reads ``off``/``on``/``yes``/``no`` as
  booleans; a choice of words annotated with ``WORD`` reads them back as ``off``/``on``, so
  ``amp: off`` works.
- Numbers are strict: ``epochs: true`` is refused rather than read as 1.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, ClassVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from simple_cnn.errors import ConfigError

Int = Annotated[int, Strict()]
"""A whole number; ``true``/``false`` and ``3.0`` are refused."""


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    return value


Float = Annotated[float, BeforeValidator(_no_bool)]
"""A real number (whole numbers are accepted); ``true``/``false`` are refused."""


def _word_of_yaml_boolean(value: Any) -> Any:
    return ("on" if value else "off") if isinstance(value, bool) else value


WORD = BeforeValidator(_word_of_yaml_boolean)
"""On a ``Literal`` of words, ``Annotated[Literal[...], WORD]``: YAML 1.1's ``off``/``no``/
``false`` (and ``on``/``yes``/``true``) arrive as booleans and are read back as ``"off"``
(``"on"``), so ``amp: off`` works."""


def invalid(key: str, value: Any, message: str) -> PydanticCustomError:
    """A cross-field error, raised in a ``model_validator(mode="after")``, that names ``key``
    (a path relative to that model) and its ``value``; ``message`` reads on from the value."""
    return PydanticCustomError("invalid_at", "{message}", {"key": key, "value": value,
                                                           "message": message})


class Model(BaseModel):
    """Frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterGroup(Model):
    """A top-level group (``key`` in ``parameters_<key>.yml``). ``model_validate`` raises
    :class:`ConfigError` with one short line per problem, each naming the full key."""

    key: ClassVar[str]

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any):
        with readable(cls, cls.key):
            return super().model_validate(obj, *args, **kwargs)


def build(model: type[BaseModel], prefix: str, /, **values: Any) -> Any:
    """``model(**values)``, with errors as :class:`ConfigError` naming ``prefix.<key>``."""
    with readable(model, prefix):
        return model(**values)


@contextmanager
def readable(model: type[BaseModel], prefix: str) -> Iterator[None]:
    """pydantic's ``ValidationError`` inside, as a :class:`ConfigError` naming ``prefix.<key>``."""
    try:
        yield
    except ValidationError as error:
        raise ConfigError(describe(error, model, prefix)) from None


def describe(error: ValidationError, model: type[BaseModel], prefix: str) -> str:
    """One line per problem: the full key, the value, and what is allowed."""
    lines = []
    for problem in error.errors(include_url=False):
        loc = [str(part) for part in problem["loc"] if not _is_tag(part)]
        if problem["type"] == "invalid_at":  # a model's rule that names one of its keys
            loc = [*loc, *problem["ctx"]["key"].split(".")]
        key = ".".join([prefix, *loc])
        lines.append(_line(problem, key, _model_at(model, loc[:-1])))
    shown = lines[:5] + ([f"... and {len(lines) - 5} more."] if len(lines) > 5 else [])
    return "\n".join(shown)


def _is_tag(part: Any) -> bool:
    """pydantic adds the validator's name to a location inside annotated types."""
    return isinstance(part, str) and part.startswith(("function-", "literal["))


def _line(problem: ErrorDetails, key: str, parent: type[BaseModel] | None) -> str:
    kind, value = problem["type"], problem.get("input")
    if kind == "extra_forbidden":
        allowed = ", ".join(parent.model_fields) if parent else "see the schema"
        return f"{key} is not a known key (a typo?); allowed keys here: {allowed}."
    if kind == "missing":
        return f"{key} is missing; add it (conf/base/parameters_*.yml shows every key)."
    if kind == "invalid_at":
        return f"{key}={problem['ctx']['value']!r} {problem['ctx']['message']}."
    if kind == "literal_error":
        return f"{key}={value!r} is not allowed; choose one of: {_expected(problem)}."
    message = problem["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    return f"{key}={value!r}: {message}."


def _expected(problem: ErrorDetails) -> str:
    return problem.get("ctx", {}).get("expected", "").replace("'", "").replace(" or ", ", ")


def _model_at(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    """The model class found by following ``path`` through nested model fields."""
    current: Any = model
    for name in path:
        field = getattr(current, "model_fields", {}).get(name)
        if field is None:
            return None
        current = next((t for t in (field.annotation, *get_args(field.annotation))
                        if isinstance(t, type) and issubclass(t, BaseModel)), None)
    return current


def merged(base: dict[str, Any], *changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with each of ``changes`` merged in key by key, as Kedro's soft
    merge of parameter files does (nested dicts merge; any other value replaces)."""
    out = copy.deepcopy(base)
    for change in changes:
        _merge_into(out, change)
    return out


def _merge_into(into: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge_into(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
