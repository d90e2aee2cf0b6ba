"""Azure's REST contract for request bodies, read from the generated models that ship inside azure-ai-ml.

``azure/ai/ml/_restclient/arm_ml_service/models`` holds one generated class per REST definition: each field is a
``rest_field`` (wire name, visibility) with a type annotation: non-``Optional`` means required, ``Literal`` is a
fixed discriminator value, ``Union[str, <Enum>]`` lists the allowed values, a model with ``__mapping__`` is
polymorphic on its discriminator (``jobType``, ``modelProvider``, ``jobInputType``...). ``Contract`` walks a body
against that: a required property missing, a value outside its enum or discriminator set, or a wrong JSON type is a
violation. Read-only properties (visibility ``read`` only) are ignored, as the service ignores them on a PUT, and so
are properties the contract does not name. Enum values compare case-insensitively (Azure accepts ``textCompletion``
for ``TextCompletion``, as the recorded azure-ai-ml fine-tuning test shows).

azure-ai-ml 1.35 ships one generated model set (api-version 2025-12-01 in ``_configuration.py``) and sends every
api-version it uses from it, so the emulator holds every accepted api-version to that one contract.

A refused body is answered as Azure Machine Learning's front end answers a bad request (the outer shape of the
400 in ``azft/emulator/fixtures/maas_model_not_supported.yaml``): ``{"error": {"code": "UserError",
"message", "details": [{"code", "target", "message"}], "additionalInfo": [...]}}``. The per-property detail codes
(``RequiredPropertyMissing``, ``InvalidEnumValue``, ``InvalidType``) are the emulator's own wording.
"""

from __future__ import annotations

import datetime
import enum
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any

from azft.emulator.wire import HttpError

#: The api-version azure-ai-ml's generated models describe (``arm_ml_service/_configuration.py``).
CONTRACT_API_VERSION = "2025-12-01"


#: Required properties the service fills in when a request leaves them out. A guess, labelled as one: azure-ai-ml's
#: own ``ServerlessEndpoint`` entity sends no ``authMode`` (api-version 2024-01-01-preview) and Azure creates such
#: endpoints with key authentication.
SERVICE_DEFAULTS: dict[str, frozenset[str]] = {"ServerlessEndpoint": frozenset({"properties.authMode"})}


@dataclass(frozen=True)
class Field:
    wire: str
    hint: Any
    required: bool
    discriminator: bool


@dataclass(frozen=True)
class Violation:
    code: str
    target: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "target": self.target, "message": self.message}


def _strip_optional(hint: Any) -> tuple[Any, bool]:
    """(the hint without None, whether None was allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) != len(typing.get_args(hint))
        return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), optional
    return hint, False


class Contract:
    """The request-body contract of every model in azure-ai-ml's generated ARM client."""

    def __init__(self, models_module: types.ModuleType, model_base: type):
        self.models = models_module
        self.model_base = model_base

    @classmethod
    @functools.lru_cache(maxsize=1)
    def load(cls) -> Contract:
        from azure.ai.ml._restclient.arm_ml_service import models
        from azure.ai.ml._restclient.arm_ml_service._utils.model_base import Model

        return cls(models, Model)

    # -- the schema of one model --------------------------------------------------------------------------------
    def model(self, name: str) -> type:
        cls = getattr(self.models, name, None)
        if not (isinstance(cls, type) and issubclass(cls, self.model_base)):
            raise KeyError(f"no model {name!r} in azure-ai-ml's REST contract")
        return cls

    @functools.lru_cache(maxsize=None)  # noqa: B019 - one Contract per process, models are immutable
    def fields(self, cls: type) -> tuple[Field, ...]:
        from azure.ai.ml._restclient.arm_ml_service.models import _models

        hints = typing.get_type_hints(cls, globalns=vars(_models), localns={"_models": self.models})
        out: dict[str, Field] = {}
        for klass in reversed(cls.__mro__):
            for attr, rf in vars(klass).items():
                if attr.startswith("_") or not hasattr(rf, "_rest_name_input") or not hasattr(rf, "_visibility"):
                    continue
                visibility = rf._visibility or ["read", "create"]
                if "create" not in visibility and "update" not in visibility:
                    out.pop(attr, None)  # read-only: the service fills it and ignores what is sent
                    continue
                hint, optional = _strip_optional(hints.get(attr, Any))
                out[attr] = Field(rf._rest_name_input or attr, hint, not optional, bool(rf._is_discriminator))
        return tuple(out.values())

    # -- checking a body ----------------------------------------------------------------------------------------
    def violations(self, model: str, body: Any) -> list[Violation]:
        found: list[Violation] = []
        self._check_value(self.model(model), body, "", found)
        defaulted = SERVICE_DEFAULTS.get(model, frozenset())
        return [v for v in found if not (v.code == "RequiredPropertyMissing" and v.target in defaulted)]

    def required_paths(self, model: str, body: Any) -> list[tuple[str | int, ...]]:
        """The paths of every required property present in ``body`` (what a one-field-removed variant removes)."""
        out: list[tuple[str | int, ...]] = []
        self._walk_required(self.model(model), body, (), out)
        return out

    def _walk_required(self, hint: Any, value: Any, path: tuple, out: list) -> None:
        hint, _ = _strip_optional(hint)
        origin = typing.get_origin(hint)
        if origin is dict and isinstance(value, dict):
            for k, v in value.items():
                self._walk_required(typing.get_args(hint)[1], v, (*path, k), out)
        elif origin is list and isinstance(value, list):
            for i, v in enumerate(value):
                self._walk_required(typing.get_args(hint)[0], v, (*path, i), out)
        elif isinstance(hint, type) and issubclass(hint, self.model_base) and isinstance(value, dict):
            cls = self._resolve(hint, value, "", [])
            for f in self.fields(cls) if cls is not None else ():
                if f.wire in value and value[f.wire] is not None:
                    if f.required:
                        out.append((*path, f.wire))
                    self._walk_required(f.hint, value[f.wire], (*path, f.wire), out)

    def check(self, model: str, body: Any, api_version: str | None = None) -> None:
        """Raise the 400 Azure answers when ``body`` breaks the contract of ``model``."""
        found = self.violations(model, body)
        if not found:
            return
        first = found[0]
        more = f" ({len(found) - 1} more in details)" if len(found) > 1 else ""
        raise HttpError(400, "UserError", f"{first.message}{more}", [v.to_dict() for v in found])

    def _check_value(self, hint: Any, value: Any, path: str, found: list[Violation]) -> None:
        hint, _ = _strip_optional(hint)
        if value is None or hint is Any or hint is object:
            return
        origin = typing.get_origin(hint)
        if origin is typing.Literal:
            allowed = typing.get_args(hint)
            if not any(_same(value, a) for a in allowed):
                found.append(
                    Violation(
                        "InvalidEnumValue", path, f"{path} must be {' or '.join(map(str, allowed))}, not {value!r}."
                    )
                )
        elif origin in (typing.Union, types.UnionType):
            self._check_union(typing.get_args(hint), value, path, found)
        elif origin is dict:
            self._check_container(
                dict,
                value,
                path,
                found,
                lambda: [(f"{path}.{k}", v) for k, v in value.items()],
                typing.get_args(hint)[1],
            )
        elif origin is list:
            self._check_container(
                list,
                value,
                path,
                found,
                lambda: [(f"{path}[{i}]", v) for i, v in enumerate(value)],
                typing.get_args(hint)[0],
            )
        elif isinstance(hint, type) and issubclass(hint, self.model_base):
            self._check_model(hint, value, path, found)
        elif isinstance(hint, type) and issubclass(hint, enum.Enum):
            self._check_enum(hint, value, path, found)
        else:
            self._check_scalar(hint, value, path, found)

    def _check_container(
        self, kind: type, value: Any, path: str, found: list[Violation], items: Any, item_hint: Any
    ) -> None:
        if not isinstance(value, kind):
            found.append(Violation("InvalidType", path, f"{path} must be a JSON {_json_name(kind)}."))
            return
        for p, v in items():
            self._check_value(item_hint, v, p, found)

    def _check_union(self, args: tuple, value: Any, path: str, found: list[Violation]) -> None:
        enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
        if enums:  # Union[str, SomeEnum]: the enum's values are the allowed ones
            self._check_enum(enums[0], value, path, found)
        elif not any(_scalar_ok(a, value) for a in args):
            found.append(Violation("InvalidType", path, f"{path} has the wrong type ({type(value).__name__})."))

    def _check_enum(self, enum_cls: type, value: Any, path: str, found: list[Violation]) -> None:
        allowed = [m.value for m in enum_cls]  # type: ignore[attr-defined]
        if not isinstance(value, str) or not any(_same(value, a) for a in allowed):
            found.append(
                Violation(
                    "InvalidEnumValue",
                    path,
                    f"{path} must be one of {', '.join(allowed)}; {value!r} is not a valid value.",
                )
            )

    def _check_scalar(self, hint: Any, value: Any, path: str, found: list[Violation]) -> None:
        if not _scalar_ok(hint, value):
            name = getattr(hint, "__name__", str(hint))
            found.append(
                Violation(
                    "InvalidType", path, f"{path} must be {_json_name(hint)}, not {type(value).__name__} ({name})."
                )
            )

    def _check_model(self, cls: type, value: Any, path: str, found: list[Violation]) -> None:
        if not isinstance(value, dict):
            found.append(
                Violation("InvalidType", path or "body", f"{path or 'The request body'} must be a JSON object.")
            )
            return
        cls = self._resolve(cls, value, path, found)
        if cls is None:
            return
        for f in self.fields(cls):
            p = f"{path}.{f.wire}" if path else f.wire
            if f.wire not in value or value[f.wire] is None:
                if f.required:
                    found.append(Violation("RequiredPropertyMissing", p, f"{p} is required."))
                continue
            self._check_value(f.hint, value[f.wire], p, found)

    def _resolve(self, cls: type, value: dict, path: str, found: list[Violation]) -> type | None:
        """The concrete class of a polymorphic model from its discriminator(s); None when the value is unknown."""
        used: list[str] = []
        while getattr(cls, "__mapping__", None):
            disc = next(
                (
                    f
                    for f in vars(cls).values()
                    if getattr(f, "_is_discriminator", False) and f._rest_name_input not in used
                ),
                None,
            )
            if disc is None:
                return cls
            used.append(disc._rest_name_input)
            wanted = value.get(disc._rest_name_input)
            p = f"{path}.{disc._rest_name_input}" if path else disc._rest_name_input
            mapping = cls.__mapping__
            if wanted is None:
                found.append(
                    Violation("RequiredPropertyMissing", p, f"{p} is required (one of {', '.join(sorted(mapping))}).")
                )
                return None
            match = next((c for k, c in mapping.items() if _same(wanted, k)), None)
            if match is None:
                found.append(
                    Violation(
                        "InvalidEnumValue",
                        p,
                        f"{p} must be one of {', '.join(sorted(mapping))}; {wanted!r} is not a valid value.",
                    )
                )
                return None
            if match is cls:
                return cls
            cls = match
        return cls


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return a == b


def _scalar_ok(hint: Any, value: Any) -> bool:
    """Whether a JSON scalar fits a scalar type the way the service's JSON reader converts them: any scalar is read
    into a string property (azure-ai-ml itself sends the integer ``hash_version`` in a code asset's string-valued
    ``properties``, and Azure accepts it), a numeric string into a number, "true"/"false" into a boolean; an object
    or array never fits a scalar."""
    if isinstance(value, (dict, list)):
        return hint not in (
            str,
            int,
            float,
            bool,
            datetime.datetime,
            datetime.timedelta,
            datetime.date,
            bytes,
        ) and not (isinstance(hint, type) and hint is not Any)
    if hint in (str, datetime.datetime, datetime.timedelta, datetime.date, bytes):
        return True
    if hint is bool:
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))
    if hint is int:
        return (
            (isinstance(value, int) and not isinstance(value, bool))
            or (isinstance(value, float) and value.is_integer())
            or (isinstance(value, str) and _is_number(value, int))
        )
    if hint is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
            isinstance(value, str) and _is_number(value, float)
        )
    if isinstance(hint, type) and hint is not Any:
        return isinstance(value, hint)
    return True


def _is_number(text: str, kind: type) -> bool:
    try:
        kind(text.strip())
    except ValueError:
        return False
    return True


def _json_name(hint: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
    }.get(hint, "a string" if hint in (datetime.datetime, datetime.timedelta) else "valid")
