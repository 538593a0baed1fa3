"""The other ways Keras lets a user name an object, mapped onto the spec's one canonical form.

Keras's `get()` functions take class names (`"Adam"`, `"CategoricalCrossentropy"`), snake-case
aliases (`"l1l2"`, `"zero"`) and the dicts `keras.saving.serialize_keras_object` writes
(`{"module": "keras.optimizers", "class_name": "Adam", "config": {...}, "registered_name": null}`).
A spec accepts the same, as data: each form is looked up in tables written here and rewritten
to a name or `{"type": ...}` object of the spec before the typed fields check it, so the stored
spec is canonical and Keras never deserializes user input. An unknown name is an error that
suggests the closest known ones.
"""

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic import BaseModel

# Config keys Keras writes that have no spec field: accepted only at the value Keras writes by
# default (ANY: whatever the value, as `name` of an optimizer or loss only labels it).
ANY = object()


@dataclass(frozen=True)
class Kind:
    """One family of Keras objects (optimizers, losses, ...) as the spec accepts it."""

    what: str  # "optimizer", in messages
    module: str  # the module serialize_keras_object writes for this family
    names: tuple[str, ...]  # canonical string names
    objects: Mapping[str, type[BaseModel]]  # class name → spec class of `{"type": ...}` objects
    aliases: Mapping[str, Any] = field(default_factory=dict)  # other names Keras takes → canonical
    fixed: Mapping[str, Any] = field(default_factory=dict)  # config keys without a spec field
    case_insensitive: bool = False  # Keras lowercases optimizer names before looking them up
    nested: Mapping[str, "Kind"] = field(default_factory=dict)  # config key → kind of its value

    def normalise(self, value: Any) -> Any:
        """The canonical spec form of `value`; ValueError with suggestions if it names nothing."""
        if isinstance(value, str):
            return self._name(value)
        if isinstance(value, dict) and "class_name" in value:
            return self._deserialize(value)
        if isinstance(value, dict) and isinstance(value.get("type"), str) and value["type"] not in self.objects:
            raise ValueError(unknown(f"{self.what} type", value["type"], self.objects))
        return value

    def normalise_object(self, value: Any) -> Any:
        """Like `normalise`, for fields where a string is no name of this kind (learning_rate)."""
        return self.normalise(value) if isinstance(value, dict) else value

    def _name(self, value: str) -> Any:
        if value in self.names:
            return value
        alias = self.aliases.get(value)
        if alias is None and self.case_insensitive:
            lowered = value.lower()
            alias = lowered if lowered in self.names else self.aliases.get(lowered)
        if alias is None:
            raise ValueError(unknown(self.what, value, self.names, also=[*self.aliases, *self.objects]))
        return dict(alias) if isinstance(alias, dict) else alias

    def _deserialize(self, value: dict[str, Any]) -> Any:
        class_name = value.get("class_name")
        module = value.get("module", self.module)
        if module != self.module:
            raise ValueError(f"a serialized {self.what} must come from module {self.module!r}, not {module!r}")
        if value.get("registered_name") is not None:
            raise ValueError(
                f"{value['registered_name']!r} is a custom registered object; only Keras's own {self.what}s are allowed"
            )
        extra = set(value) - {"module", "class_name", "config", "registered_name", "build_config"}
        if extra:
            raise ValueError(f"a serialized {self.what} has no key {sorted(extra)[0]!r}")
        config = value.get("config") or {}
        if not isinstance(config, dict):
            raise ValueError(f"the config of a serialized {class_name} must be an object")
        if isinstance(class_name, str) and class_name not in self.objects and class_name in self.aliases:
            if set(config) <= {"name", "dtype"}:  # nothing to configure: the plain name
                alias = self.aliases[class_name]
                return dict(alias) if isinstance(alias, dict) else alias
            raise ValueError(f"{class_name} takes no arguments here; write it as {self.aliases[class_name]!r}")
        if not isinstance(class_name, str) or class_name not in self.objects:
            raise ValueError(unknown(self.what, str(class_name), self.objects))
        spec_fields = self.objects[class_name].model_fields
        arguments: dict[str, Any] = {"type": class_name}
        for key, argument in config.items():
            if key in spec_fields and key != "type":
                if argument is None and spec_fields[key].default is not None:
                    continue  # None is Keras's "use the default"
                nested = self.nested.get(key)
                arguments[key] = nested.normalise(argument) if nested is not None else argument
            elif key in self.fixed:
                wanted = self.fixed[key]
                if wanted is not ANY and argument != wanted and argument is not None:
                    raise ValueError(f"{class_name}: {key}={argument!r} is not supported; leave it at {wanted!r}")
            else:
                raise ValueError(f"{class_name} has no argument {key!r} here; arguments: {', '.join(spec_fields)}")
        return arguments


def unknown(what: str, value: str, known: Iterable[str], also: Iterable[str] = ()) -> str:
    """ "unknown optimizer 'adamm'; did you mean 'adam', 'adamw' or 'adamax'?": the closest of
    `known`, else of the names in `also` (other spellings), never the whole list."""
    suggestion = did_you_mean(value, known) or did_you_mean(value, also)
    return f"unknown {what} {value!r}; {suggestion or 'GET /v1/spec/catalog lists them all'}"


def did_you_mean(value: str, known: Iterable[str]) -> str:
    """ "did you mean 'a', 'b' or 'c'?" with the closest three names (difflib), or ""."""
    candidates = list(known)
    close = difflib.get_close_matches(value, candidates, n=3, cutoff=0.6)
    if not close:
        lowered = difflib.get_close_matches(value.lower(), [c.lower() for c in candidates], n=3, cutoff=0.6)
        close = [next(c for c in candidates if c.lower() == match) for match in lowered]
    if not close:
        return ""
    quoted = [repr(name) for name in close]
    choices = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"did you mean {choices}?"


def snake_case(class_name: str) -> str:
    """`TopKCategoricalAccuracy` → `top_k_categorical_accuracy`, `L1L2` → `l1_l2` (Keras's own rule)."""
    spaced = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", spaced).lower()


def class_aliases(
    class_names: Iterable[str], names: Iterable[str], objects: Mapping[str, type[BaseModel]]
) -> dict[str, Any]:
    """Keras class names written as strings: the snake-case name where the spec has one,
    else the `{"type": ...}` object with default arguments (what Keras's `get()` builds)."""
    known = set(names)
    aliases: dict[str, Any] = {}
    for class_name in class_names:
        snake = snake_case(class_name)
        if snake in known:
            aliases[class_name] = snake
        elif class_name in objects and not any(
            f.is_required() for name, f in objects[class_name].model_fields.items() if name != "type"
        ):
            aliases[class_name] = {"type": class_name}
    return aliases


def by_type(union: Any) -> dict[str, type[BaseModel]]:
    """`{"Adam": Adam, ...}` for a discriminated union of spec classes (Annotated[A | B, Field])."""
    return {cls.model_fields["type"].annotation.__args__[0]: cls for cls in get_args(get_args(union)[0])}


# Tags of the name-or-object unions below; error paths leave them out (app/api/errors.py).
BY_NAME = "by-name"
BY_TYPE = "by-type"


def name_or_object(value: Any) -> str:
    """Discriminator: a string is a name, anything else an object, so an error names one form."""
    return BY_NAME if isinstance(value, str) else BY_TYPE
