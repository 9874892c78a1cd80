"""Turn pydantic validation errors into lines a user can act on: one per problem, closest names suggested."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError


def closest(name: str, valid: list[str], prefix: str = "") -> str:
    """`` Did you mean 'x'?`` for the closest valid name, or an empty string."""
    close = difflib.get_close_matches(name, valid, n=1)
    return f" Did you mean {prefix + close[0]!r}?" if close else ""


def _section_fields(model: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    """The valid field names at ``location`` (the parent of an offending field)."""
    current: Any = model
    for part in location:
        if isinstance(part, str) and isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return []
            current = field.annotation
            # Optional sections: ``X | None`` -> X
            args = [a for a in getattr(current, "__args__", ()) if a is not type(None)]
            if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                current = args[0]
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _looks_like_whole_number(text: str) -> bool:
    try:
        return float(text).is_integer()
    except ValueError:
        return False


def problem_lines(error: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """One line per problem of ``error``, each starting with the field's dotted path (after ``prefix``)."""
    lines = []
    for item in error.errors():
        location = tuple(item["loc"])
        dotted = prefix + (".".join(str(p) for p in location) or "(top level)")
        if item["type"] == "extra_forbidden":
            valid = _section_fields(model, location[:-1])
            parent = prefix + "".join(f"{p}." for p in location[:-1])
            hint = closest(str(location[-1]), valid, parent)
            lines.append(f"{dotted}: unknown field.{hint} Valid fields here: {', '.join(valid) or '(none)'}.")
        elif item["type"] == "missing":
            lines.append(f"{dotted}: required field is missing.")
        else:
            message = item["msg"].removeprefix("Value error, ")
            value = item.get("input")
            hint = ""
            if (
                item["type"] in ("int_parsing", "int_type")
                and isinstance(value, str)
                and _looks_like_whole_number(value)
            ):
                hint = f" YAML reads {value} as text; write the number in full, e.g. {int(float(value))}."
            lines.append(f"{dotted}: {message} (got {value!r}).{hint}")
    return lines
