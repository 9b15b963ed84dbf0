"""The machine-readable Bot API description (``bot-api-spec.json`` beside this file, MIT;
see ``NOTICE``) as a validator.

The spec (ark0f/tg-bot-api, Bot API 8.1) may be older than the python-telegram-bot release
under test, so anything it doesn't know (an argument or an object property) is a *warning*,
while breaking what it does know (unknown method, missing required argument, wrong type,
length/enumeration limits) is an *error*: that is a request Telegram would reject.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .telegram_html import utf16_len

__all__ = ["PARSED_TEXT_FIELDS", "SPEC_PATH", "ArgSpec", "BotApiSpec", "Issues", "MethodSpec", "load_spec"]

#: Vendored with its licence (``LICENSE-MIT.md``), so a clone alone runs the tests.
SPEC_PATH = Path(__file__).resolve().parent / "bot-api-spec.json"

TypeSpec = dict[str, Any]

#: Text fields whose limits apply *after* entity parsing, with the field naming their parse
#: mode. When that mode is set, the raw-length check is skipped here and the server checks the
#: visible length instead (``<b>x</b>`` is one character, not eight).
PARSED_TEXT_FIELDS = {
    "text": "parse_mode",
    "caption": "parse_mode",
    "message_text": "parse_mode",
    "quote": "quote_parse_mode",
    "explanation": "explanation_parse_mode",
    "question": "question_parse_mode",
}

# Objects that stand for "a file": a file_id/URL string, an attach:// reference or an upload.
_FILE_OBJECTS = {"InputFile"}


@dataclass
class ArgSpec:
    name: str
    required: bool
    type: TypeSpec

    @property
    def is_json(self) -> bool:
        """Whether a form-encoded value of this argument is a JSON document."""
        return _is_json_type(self.type)


@dataclass
class MethodSpec:
    name: str
    arguments: dict[str, ArgSpec]
    return_type: TypeSpec
    multipart_only: bool = False

    @property
    def required(self) -> list[str]:
        return [a.name for a in self.arguments.values() if a.required]


@dataclass
class Issues:
    """Validation outcome: ``errors`` make Telegram answer 400, ``warnings`` are spec gaps."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def extend(self, other: Issues) -> None:
        self.errors.extend(other.errors)
        self.warnings.extend(other.warnings)


def _is_json_type(t: TypeSpec) -> bool:
    kind = t["type"]
    if kind == "array":
        return True
    if kind == "reference":
        return t["reference"] not in _FILE_OBJECTS
    if kind == "any_of":
        return all(_is_json_type(alt) for alt in t["any_of"])
    return False


def _field_type(t: TypeSpec, container: dict[str, Any]) -> TypeSpec:
    mode_field = PARSED_TEXT_FIELDS.get(t.get("name", ""))
    if mode_field and container.get(mode_field):
        return {k: v for k, v in t.items() if k not in ("min_len", "max_len")}
    return t


def _type_name(t: TypeSpec) -> str:
    kind = t["type"]
    if kind == "reference":
        return str(t["reference"])
    if kind == "array":
        return f"Array of {_type_name(t['array'])}"
    if kind == "any_of":
        return " or ".join(_type_name(a) for a in t["any_of"])
    return str(kind)


class BotApiSpec:
    """Methods and objects of the spec, looked up case-insensitively like Telegram does."""

    def __init__(self, data: dict[str, Any]) -> None:
        version = data.get("version", {})
        self.version = f"{version.get('major')}.{version.get('minor')}"
        self.methods: dict[str, MethodSpec] = {}
        for m in data["methods"]:
            args = {
                a["name"]: ArgSpec(a["name"], bool(a.get("required")), a)
                for a in m.get("arguments", [])
            }
            self.methods[m["name"].lower()] = MethodSpec(
                m["name"], args, m.get("return_type", {"type": "bool"}),
                bool(m.get("multipart_only")),
            )
        self.objects: dict[str, dict[str, Any]] = {o["name"]: o for o in data["objects"]}

    def method(self, name: str) -> MethodSpec | None:
        return self.methods.get(name.lower())

    # ---------------------------------------------------------------- form decoding

    def decode_form_value(self, raw: str, t: TypeSpec) -> Any:
        """Turn a form field (always a string on the wire) into the value it stands for.

        python-telegram-bot posts ``application/x-www-form-urlencoded`` where strings are sent
        as is and everything else JSON-encoded; Telegram decodes by the declared type, and so
        do we. Undecodable values are returned unchanged so validation reports them.
        """
        kind = t["type"]
        if kind == "string":
            return raw
        if kind == "integer":
            try:
                return int(raw)
            except ValueError:
                return raw
        if kind == "float":
            try:
                return float(raw)
            except ValueError:
                return raw
        if kind == "bool":
            return {"true": True, "false": False, "1": True, "0": False}.get(raw.lower(), raw)
        if kind in ("array", "reference"):
            if kind == "reference" and t["reference"] in _FILE_OBJECTS:
                return raw
            try:
                return json.loads(raw)
            except ValueError:
                return raw
        if kind == "any_of":
            kinds = [alt["type"] for alt in t["any_of"]]
            if "integer" in kinds:
                try:
                    return int(raw)
                except ValueError:
                    pass
            if raw[:1] in ("{", "[") and any(_is_json_type(alt) for alt in t["any_of"]):
                try:
                    return json.loads(raw)
                except ValueError:
                    return raw
            return raw
        return raw

    # ---------------------------------------------------------------- validation

    def validate_call(self, method: MethodSpec, params: dict[str, Any]) -> Issues:
        issues = Issues()
        for arg in method.arguments.values():
            if arg.required and (arg.name not in params or params[arg.name] is None):
                issues.errors.append(f"parameter \"{arg.name}\" is required")
        for name, value in params.items():
            arg_spec = method.arguments.get(name)
            if arg_spec is None:
                issues.warnings.append(
                    f"{method.name}: argument \"{name}\" is not in Bot API spec {self.version}"
                )
                continue
            issues.extend(self.validate_value(value, _field_type(arg_spec.type, params), name))
        return issues

    def validate_value(self, value: Any, t: TypeSpec, path: str) -> Issues:
        issues = Issues()
        kind = t["type"]
        if kind == "string":
            if not isinstance(value, str):
                issues.errors.append(f"field \"{path}\" must be of type String")
                return issues
            length = utf16_len(value)
            if "min_len" in t and length < t["min_len"]:
                issues.errors.append(f"field \"{path}\" is too short (min {t['min_len']})")
            if "max_len" in t and length > t["max_len"]:
                issues.errors.append(f"field \"{path}\" is too long (max {t['max_len']})")
            if "enumeration" in t and value not in t["enumeration"]:
                issues.errors.append(
                    f"wrong value \"{value}\" of field \"{path}\", expected one of "
                    f"{', '.join(map(str, t['enumeration']))}"
                )
        elif kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                issues.errors.append(f"field \"{path}\" must be of type Integer")
                return issues
            if "enumeration" in t and value not in t["enumeration"]:
                issues.errors.append(f"wrong value {value} of field \"{path}\"")
            if ("min" in t and value < t["min"]) or ("max" in t and value > t["max"]):
                # Telegram clamps these (e.g. getUpdates limit) rather than failing
                issues.warnings.append(
                    f"field \"{path}\"={value} is outside {t.get('min')}..{t.get('max')}"
                )
        elif kind == "float":
            if not isinstance(value, int | float) or isinstance(value, bool):
                issues.errors.append(f"field \"{path}\" must be of type Float")
        elif kind == "bool":
            if not isinstance(value, bool):
                issues.errors.append(f"field \"{path}\" must be of type Boolean")
        elif kind == "array":
            if not isinstance(value, list):
                issues.errors.append(
                    f"field \"{path}\" must be a JSON-serialized {_type_name(t)}"
                )
                return issues
            for i, item in enumerate(value):
                issues.extend(self.validate_value(item, t["array"], f"{path}[{i}]"))
        elif kind == "reference":
            issues.extend(self.validate_object(value, t["reference"], path))
        elif kind == "any_of":
            issues.extend(self._validate_any_of(value, t["any_of"], path))
        return issues

    def _validate_any_of(self, value: Any, alternatives: list[TypeSpec], path: str) -> Issues:
        refs = [a for a in alternatives if a["type"] == "reference"]
        if isinstance(value, dict) and refs and len(refs) == len(alternatives):
            chosen = self._discriminate(value, [a["reference"] for a in refs])
            if chosen is not None:
                return self.validate_object(value, chosen, path)
        best: Issues | None = None
        for alt in alternatives:
            result = self.validate_value(value, alt, path)
            if not result.errors:
                return result
            if best is None or len(result.errors) < len(best.errors):
                best = result
        issues = Issues()
        issues.errors.append(f"field \"{path}\" must be of type {_type_name({'type': 'any_of', 'any_of': alternatives})}")
        if best is not None:
            issues.errors.extend(best.errors)
        return issues

    def _discriminate(self, value: dict[str, Any], names: list[str]) -> str | None:
        """Pick the variant of a union object (InlineQueryResult, BotCommandScope,
        ChatMember, ...) by its tag field (``type``/``status``/``source``), as Telegram does."""
        for name in names:
            obj = self.objects.get(name, {})
            tags = [
                p for p in obj.get("properties", [])
                if p["name"] in ("type", "status", "source") and "default" in p
            ]
            if tags and all(value.get(p["name"]) == p["default"] for p in tags):
                # several variants can share a tag (e.g. InlineQueryResultPhoto and
                # InlineQueryResultCachedPhoto): prefer the one whose required fields are present
                required = [p["name"] for p in obj["properties"] if p["required"]]
                if all(r in value for r in required):
                    return name
        for name in names:
            obj = self.objects.get(name, {})
            tags = [
                p for p in obj.get("properties", [])
                if p["name"] in ("type", "status", "source") and "default" in p
            ]
            if tags and all(value.get(p["name"]) == p["default"] for p in tags):
                return name
        return None

    def validate_object(self, value: Any, name: str, path: str) -> Issues:
        issues = Issues()
        if name in _FILE_OBJECTS:
            return issues
        obj = self.objects.get(name)
        if obj is None:
            issues.warnings.append(f"object type {name} of \"{path}\" is not in the spec")
            return issues
        if obj.get("type") == "any_of":
            return self._validate_any_of(value, obj["any_of"], path)
        if not isinstance(value, dict):
            issues.errors.append(f"field \"{path}\" must be a JSON-serialized {name}")
            return issues
        props = {p["name"]: p for p in obj.get("properties", [])}
        for prop in props.values():
            if prop["required"] and prop["name"] not in value:
                issues.errors.append(f"field \"{path}.{prop['name']}\" is required in {name}")
        for key, item in value.items():
            prop = props.get(key)
            if prop is None:
                issues.warnings.append(f"{name}: field \"{path}.{key}\" is not in the spec")
                continue
            issues.extend(self.validate_value(item, _field_type(prop, value), f"{path}.{key}"))
        return issues

    def object_fields(self, name: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.objects.get(name, {}).get("properties", [])}


@functools.cache
def _load(path: str) -> BotApiSpec:
    with open(path, encoding="utf-8") as fh:
        return BotApiSpec(json.load(fh))


def load_spec(path: str | Path | None = None) -> BotApiSpec:
    """Read the spec once per process (it is ~0.5 MB and every server instance needs it)."""
    target = Path(path) if path is not None else SPEC_PATH
    if not target.is_file():
        raise FileNotFoundError(
            f"Bot API spec not found at {target}; it ships beside tests/support/fakebotapi/spec.py"
        )
    return _load(str(target.resolve()))
