"""Ticket templates: parsed once at config load, rendered per request by walking the parsed pieces.

Syntax: "{name}" or "{dotted.name}" inserts a variable; "{{" and "}}" are literal braces. Nothing else
is allowed inside braces: no indexing ({a[0]}), conversion ({a!r}), format spec ({a:>10}), positional
({0}) or dunder ({x.__class__}) names. A template may use only the variables it declares in
required_variables, plus the injected job.id (the request's job_id) and job.time (the request time,
ISO-8601 UTC to the second, e.g. 2024-05-01T12:00:00Z); anything else is refused at load.

Safety: rendering never calls str.format, format_map, string.Template, getattr or str() on caller
data. Lookups walk nested dicts by key only, and an inserted value is plain text: it is never parsed
again, so a value "{job.id}" stays "{job.id}". A caller-supplied "job" variable is refused with a
RESERVED violation rather than silently ignored: a caller who sends job.id expects to see it used, and
the error says where job.id really comes from.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from server.domain.fitting import fit_lengths
from server.domain.rules import FieldRule, Limits
from server.domain.validation import Reason, Violation, shown, validate

JOB_VARIABLES: Final = frozenset({"job.id", "job.time"})

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_INT_RANGE: Final = 2**63  # Python ints only arrive from plain-dict callers; Struct numbers are floats
_EXACT_FLOAT: Final = 2**53  # integral floats below this print without ".0"


class TemplateError(ValueError):
    """A template that cannot be used; `where` is its location inside the template's JSON object."""

    def __init__(self, template: str, where: str, problem: str) -> None:
        super().__init__(f"template {template!r}, {where}: {problem}")
        self.template = template
        self.where = where  # "fields.<field>" or "required_variables"
        self.problem = problem


class Ref(NamedTuple):
    """A placeholder: the dotted variable name it inserts."""

    name: str


Piece = str | Ref


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    name: str
    platform: str
    required: tuple[tuple[str, tuple[str, ...]], ...]  # (dotted name, its path), declared order
    used: frozenset[str]  # declared variables that appear in some field
    fields: Mapping[str, tuple[Piece, ...]]  # every field, in template order
    field_variables: Mapping[str, frozenset[str]]  # field -> variables it inserts
    uses_job_time: bool
    # Render-time form: every field in order with constant fields already final (the rest ""),
    # and for each field with placeholders its frame (literals, "" where a variable goes) and the
    # slots to fill (frame index, variable name).
    skeleton: Mapping[str, str]
    dynamic: tuple[tuple[str, tuple[str, ...], tuple[tuple[int, str], ...]], ...]
    # The repeat comment's frame and slots, as for a field; None when the template has none.
    repeat: tuple[str, tuple[str, ...], tuple[tuple[int, str], ...]] | None = None


@dataclass(frozen=True)
class JobContext:
    id: str  # the request's job_id
    time: datetime  # the request time; a naive datetime is taken as UTC


@dataclass(slots=True)  # not frozen: frozen __init__ costs a microsecond per render
class RenderResult:
    fields: dict[str, str]  # every template field; a failed placeholder renders as ""
    violations: list[Violation]  # on variables.<name> (or variables), in declared order
    incomplete: frozenset[str]  # fields that inserted a failed variable
    repeat_comment: str = ""  # the template's repeat comment, rendered ("" without one)


@dataclass(slots=True)
class TemplateOutcome:
    rendered: dict[str, str]  # as rendered: what a preview shows
    fields: dict[str, str]  # validated, with defaults: what build_payload takes
    violations: list[Violation]  # variables first, then field rules
    repeat_comment: str = ""  # what a repeat attaching to the open ticket adds ("": the default)

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    platform: str
    description: str
    required_variables: tuple[str, ...]
    fields: Mapping[str, str]  # canonical field -> text with {variable} placeholders
    # The comment a repeat (a create attaching to the open ticket of its dedup key) adds, with the
    # same placeholders; "" means the rendered summary and description.
    repeat_comment: str = ""
    # Parsed once at load (compile_template); None only for a spec built by hand, e.g. in a test.
    compiled: CompiledTemplate | None = dataclasses.field(default=None, repr=False, compare=False)


# ---------------------------------------------------------------------------------------------
# Parsing, once at load.


def parse_text(text: str) -> tuple[Piece, ...]:
    """Split template text into literal strings and Refs. Raises ValueError naming the problem."""
    pieces: list[Piece] = []
    literal: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[pos : match.start()])
        pos = match.end()
        token = match.group()
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif match.group(1) is not None:
            _flush(literal, pieces)
            pieces.append(Ref(_placeholder_name(match.group(1))))
        else:
            raise ValueError(
                f"unbalanced {token!r} at character {match.start()}; write {token * 2!r} for a "
                "literal brace"
            )
    literal.append(text[pos:])
    _flush(literal, pieces)
    return tuple(pieces)


def _flush(literal: list[str], pieces: list[Piece]) -> None:
    text = "".join(literal)
    literal.clear()
    if text:
        pieces.append(text)


def _placeholder_name(name: str) -> str:
    if not name:
        raise ValueError("empty placeholder {}; write {{}} for literal braces")
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid placeholder {{{shown(name)}}}: use a dotted name such as {{alert.host}} "
            "(no indexing, conversion, format spec or positional index)"
        )
    if any(part.startswith("__") for part in name.split(".")):
        raise ValueError(f"invalid placeholder {{{shown(name)}}}: names may not start with '__'")
    return name


def compile_template(spec: TemplateSpec) -> CompiledTemplate:
    """Parse every field and check every placeholder is declared. Raises TemplateError."""
    declared = _declared(spec)
    fields: dict[str, tuple[Piece, ...]] = {}
    field_variables: dict[str, frozenset[str]] = {}
    for field, text in spec.fields.items():
        try:
            pieces = parse_text(text)
        except ValueError as exc:
            raise TemplateError(spec.name, f"fields.{field}", str(exc)) from None
        names = frozenset(p.name for p in pieces if isinstance(p, Ref))
        undeclared = sorted(names - declared - JOB_VARIABLES)
        if undeclared:
            raise TemplateError(
                spec.name,
                f"fields.{field}",
                f"{{{undeclared[0]}}} is not declared in required_variables (a template may use "
                "only its declared variables and job.id, job.time)",
            )
        fields[field] = pieces
        field_variables[field] = names
    repeat = _repeat(spec, declared)
    repeat_variables = frozenset() if repeat is None else frozenset(name for _, name in repeat[2])
    used = frozenset().union(*field_variables.values(), repeat_variables)
    return CompiledTemplate(
        name=spec.name,
        platform=spec.platform,
        required=tuple((name, tuple(name.split("."))) for name in spec.required_variables),
        used=used & declared,
        fields=fields,
        field_variables=field_variables,
        uses_job_time="job.time" in used,
        skeleton={f: "" if names else "".join(fields[f]) for f, names in field_variables.items()},
        dynamic=tuple(_frame(f, fields[f]) for f, names in field_variables.items() if names),
        repeat=repeat,
    )


def _repeat(
    spec: TemplateSpec, declared: frozenset[str]
) -> tuple[str, tuple[str, ...], tuple[tuple[int, str], ...]] | None:
    if not spec.repeat_comment:
        return None
    try:
        pieces = parse_text(spec.repeat_comment)
    except ValueError as exc:
        raise TemplateError(spec.name, "repeat_comment", str(exc)) from None
    undeclared = sorted({p.name for p in pieces if isinstance(p, Ref)} - declared - JOB_VARIABLES)
    if undeclared:
        problem = f"{{{undeclared[0]}}} is not declared in required_variables"
        raise TemplateError(spec.name, "repeat_comment", problem)
    return _frame("repeat_comment", pieces)


def _frame(
    field: str, pieces: tuple[Piece, ...]
) -> tuple[str, tuple[str, ...], tuple[tuple[int, str], ...]]:
    frame = tuple("" if isinstance(p, Ref) else p for p in pieces)
    slots = tuple((i, p.name) for i, p in enumerate(pieces) if isinstance(p, Ref))
    return field, frame, slots


def _declared(spec: TemplateSpec) -> frozenset[str]:
    for name in spec.required_variables:
        if name == "job" or name.startswith("job."):
            raise TemplateError(spec.name, "required_variables", f"{name!r}: job.* is injected")
        if not _NAME.fullmatch(name) or any(p.startswith("__") for p in name.split(".")):
            raise TemplateError(
                spec.name, "required_variables", f"{shown(name)!r} is not a dotted name"
            )
    return frozenset(spec.required_variables)


def compiled_template(spec: TemplateSpec) -> CompiledTemplate:
    """The spec's template as compiled at config load, or compiled now for a hand-built spec."""
    return spec.compiled if spec.compiled is not None else compile_template(spec)


# ---------------------------------------------------------------------------------------------
# Rendering, per request.


def render(
    template: CompiledTemplate,
    variables: Mapping[str, Any],
    job: JobContext,
    limits: Limits,
    variables_bytes: int | None = None,
) -> RenderResult:
    """Fill the template's fields from variables (a decoded Struct) and the injected job context.

    variables_bytes is the serialized size of the variables (e.g. Struct.ByteSize()); when None it
    is estimated with measure_variables.
    """
    limit = limits.max_variables_bytes
    size = measure_variables(variables, limit) if variables_bytes is None else variables_bytes
    if size > limit:
        violation = Violation("variables", f"must be at most {limit} bytes", Reason.MAX_SIZE)
        return RenderResult({}, [violation], frozenset(template.fields))
    if type(variables) is not dict:
        variables = dict(variables)  # lookups walk exact dicts only, from the top down
    violations: list[Violation] = []
    if "job" in variables:
        violations.append(_RESERVED)
    values, failed = _resolve(template, variables, job, limits.max_field_value_chars, violations)
    fields = dict(template.skeleton)
    for field, frame, slots in template.dynamic:
        # A walk over the parsed pieces: literals stay, each slot takes its variable's plain text.
        parts = list(frame)
        for index, name in slots:
            parts[index] = values[name]
        fields[field] = "".join(parts)
    incomplete: frozenset[str] = frozenset()
    if failed:
        incomplete = frozenset(
            f for f, names in template.field_variables.items() if not names.isdisjoint(failed)
        )
    repeat = ""
    if template.repeat is not None:
        _, frame, slots = template.repeat
        parts = list(frame)
        for index, name in slots:
            parts[index] = values[name]
        repeat = "".join(parts)
    return RenderResult(fields, violations, incomplete, repeat)


def render_and_validate(
    template: CompiledTemplate,
    variables: Mapping[str, Any],
    job: JobContext,
    rules: Mapping[str, FieldRule],
    limits: Limits,
    variables_bytes: int | None = None,
    *,
    fit: bool = False,
) -> TemplateOutcome:
    """Render, then run the platform's field rules over the result.

    A field that inserted a failed variable is not judged by the field rules: its violation would
    only echo the variable's (e.g. "summary is required" when variables.title is missing).
    fit: string fields over their length are cut to it first (domain/fitting.py says when).
    """
    rendered = render(template, variables, job, limits, variables_bytes)
    if fit:
        rendered.fields = fit_lengths(rules, rendered.fields, limits.max_field_value_chars)
    checked = validate(rules, rendered.fields, limits)
    violations = list(rendered.violations)
    for violation in checked.violations:
        if violation.field.partition("[")[0] not in rendered.incomplete:
            violations.append(violation)
    return TemplateOutcome(rendered.fields, checked.fields_with_defaults, violations, rendered.repeat_comment)


_RESERVED: Final = Violation(
    "variables.job",
    "is reserved: job.id (from job_id) and job.time (the request time) are set by the gateway",
    Reason.RESERVED,
)
_MISSING: Final = object()


def _resolve(
    template: CompiledTemplate,
    variables: Mapping[str, Any],
    job: JobContext,
    cap: int,
    violations: list[Violation],
) -> tuple[dict[str, str], set[str]]:
    """Each variable's text, once per request; failures render as "" and are reported once."""
    values = {"job.id": job.id}
    if template.uses_job_time:
        values["job.time"] = iso_utc(job.time)
    failed: set[str] = set()
    used = template.used
    for name, path in template.required:
        value = _lookup(variables, path)
        if type(value) is str and len(value) <= cap:  # the common case, kept cheap
            values[name] = value
            continue
        if value is _MISSING:
            problem = _missing(variables, path, template.name)
            violations.append(Violation(f"variables.{name}", problem, Reason.MISSING_VARIABLE))
        elif name in used:
            text, violation = _text(name, value, cap)
            if violation is None:
                values[name] = text
                continue
            violations.append(violation)
        else:
            continue  # declared, present, never inserted: any type will do
        values[name] = ""
        failed.add(name)
    return values, failed


def _lookup(variables: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = variables
    for key in path:
        # Exact dicts only, never getattr or a subclass's get: a lookup cannot run caller code.
        if type(node) is not dict:
            return _MISSING
        node = node.get(key, _MISSING)
    return node


def _missing(variables: Mapping[str, Any], path: tuple[str, ...], template: str) -> str:
    for depth in range(1, len(path)):
        node = _lookup(variables, path[:depth])
        if node is not _MISSING and not isinstance(node, dict):
            parent = ".".join(path[:depth])
            return f"is required by template {template}; variables.{parent} is not an object"
    return f"is required by template {template}"


def _text(name: str, value: Any, cap: int) -> tuple[str, Violation | None]:
    text = _scalar_text(value)
    if text is None:
        kind = "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else None
        what = f"got {kind}" if kind else "unsupported value"
        problem = f"must be a scalar (string, number, boolean or null); {what}"
        return "", Violation(f"variables.{name}", problem, Reason.TYPE)
    if len(text) > cap:
        problem = f"must be at most {cap} characters, got {len(text)}"
        return "", Violation(f"variables.{name}", problem, Reason.MAX_LENGTH)
    return text, None


def _scalar_text(value: Any) -> str | None:
    """JSON-like text for a scalar; None for anything else. Never calls a subclass's __str__."""
    if isinstance(value, str):
        return value if type(value) is str else str.__str__(value)  # a plain copy of a subclass
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and -_EXACT_FLOAT < value < _EXACT_FLOAT:
            return int.__repr__(int(value))  # Struct numbers are floats: 3.0 -> "3"
        return float.__repr__(value)  # shortest round-trip form: 0.1, 1e+20, nan, inf
    if isinstance(value, int) and -_INT_RANGE < value < _INT_RANGE:
        return int.__repr__(value)
    return None


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC to the second, e.g. 2024-05-01T12:00:00Z; a naive datetime is taken as UTC."""
    if moment.tzinfo is not None and moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # printf-style over six ints of our own: half the cost of isoformat(timespec=...) or an
    # f-string with format specs, and this runs on every render that uses job.time.
    fields = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % fields  # noqa: UP031


def measure_variables(variables: Mapping[str, Any], limit: int) -> int:
    """Estimated serialized size of decoded variables: UTF-8 of keys and strings, 8 bytes a number,
    plus a little framing. Stops soon after passing limit, so its cost is bounded by the limit."""
    total = 0
    stack: list[Any] = [variables]
    while stack and total <= limit:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                total += _utf8_len(key) + 2
                if total > limit:  # a single huge object must not be walked to its end
                    return total
                stack.append(value)
        elif isinstance(node, list | tuple):
            total += 2
            stack.extend(node)
        elif isinstance(node, str):
            total += _utf8_len(node) + 2
        else:
            total += 8
    return total


def _utf8_len(text: Any) -> int:
    if not isinstance(text, str):
        return 8
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
