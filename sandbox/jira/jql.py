"""A JQL subset parser: clauses joined by AND / OR / NOT with parentheses, then ORDER BY.

Clauses: field = | != | ~ | !~ | > | >= | < | <= value, field [NOT] IN (v, ...),
field IS [NOT] EMPTY|NULL. Values are quoted strings, bare words, EMPTY/NULL or a function
call such as currentUser(). Syntax errors read like Jira's, with line and character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_JQL_LENGTH = 10_000


class JqlError(Exception):
    """Answered as 400 {"errorMessages": [str(exc)], "errors": {}}."""


@dataclass(frozen=True)
class Empty:
    """The EMPTY / NULL keyword as a value."""


@dataclass(frozen=True)
class Function:
    name: str  # lower case, e.g. "currentuser"


Value = str | Empty | Function


@dataclass(frozen=True)
class Clause:
    field: str  # lower case, aliases resolved
    operator: str  # "=", "!=", "~", "!~", ">", ">=", "<", "<=", "in", "not in", "is", "is not"
    values: tuple[Value, ...]
    position: int  # character offset, for error messages


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    operator: str  # "and" / "or"
    operands: tuple[Node, ...]


Node = Clause | Not | BoolOp


@dataclass(frozen=True)
class OrderKey:
    field: str
    descending: bool


@dataclass(frozen=True)
class JqlQuery:
    where: Node | None
    order: tuple[OrderKey, ...]


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "word", "op", "(", ")", ",", "end"
    text: str
    position: int


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>!=|!~|>=|<=|=|~|>|<)
      | (?P<punct>[(),])
      | (?P<word>[^\s"'(),=!<>~]+)
    )""",
    re.VERBOSE | re.DOTALL,
)
_ALIASES = {"issuekey": "key", "type": "issuetype", "issue": "key"}
_CUSTOM_FIELD = re.compile(r"cf\[(\d+)\]")
_OPERATORS_TEXT = (
    "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."
)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _tokens(jql: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(jql):
        if jql[position:].strip() == "":
            break
        match = _TOKEN.match(jql, position)
        if match is None:
            start = len(jql) - len(jql[position:].lstrip())
            raise JqlError(
                f"Error in the JQL Query: The character '{jql[start]}' is a reserved JQL character. "
                f"(line 1, character {start + 1})"
            )
        kind = match.lastgroup or "word"
        start = match.start(kind)
        text = match.group(kind)
        if kind == "punct":
            kind = text
        tokens.append(_Token(kind, _unquote(text) if kind == "string" else text, start))
        position = match.end()
    tokens.append(_Token("end", "", len(jql)))
    return tokens


def normalise_field(name: str) -> str:
    lowered = name.lower()
    custom = _CUSTOM_FIELD.fullmatch(lowered)
    if custom:
        return f"customfield_{custom.group(1)}"
    return _ALIASES.get(lowered, lowered)


class _Parser:
    def __init__(self, jql: str) -> None:
        self.tokens = _tokens(jql)
        self.index = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def is_keyword(self, *words: str) -> bool:
        token = self.current
        return token.kind == "word" and token.text.lower() in words

    def fail(self, expected: str) -> JqlError:
        token = self.current
        got = "end of query" if token.kind == "end" else f"'{token.text}'"
        return JqlError(
            f"Error in the JQL Query: Expecting {expected} but got {got}. "
            f"(line 1, character {token.position + 1})"
        )

    def query(self) -> JqlQuery:
        where = None if self.is_keyword("order") or self.current.kind == "end" else self.or_expr()
        order: list[OrderKey] = []
        if self.is_keyword("order"):
            self.advance()
            if not self.is_keyword("by"):
                raise self.fail("'BY'")
            self.advance()
            order.append(self.order_key())
            while self.current.kind == ",":
                self.advance()
                order.append(self.order_key())
        if self.current.kind != "end":
            raise self.fail("either 'OR' or 'AND'" if where is not None else "a field name")
        return JqlQuery(where, tuple(order))

    def order_key(self) -> OrderKey:
        token = self.current
        if token.kind not in ("word", "string"):
            raise self.fail("a field name")
        self.advance()
        descending = False
        if self.is_keyword("asc", "desc"):
            descending = self.advance().text.lower() == "desc"
        return OrderKey(normalise_field(token.text), descending)

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.is_keyword("or"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.is_keyword("and"):
            self.advance()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def not_expr(self) -> Node:
        if self.is_keyword("not"):
            self.advance()
            return Not(self.not_expr())
        if self.current.kind == "(":
            self.advance()
            node = self.or_expr()
            if self.current.kind != ")":
                raise self.fail("')'")
            self.advance()
            return node
        return self.clause()

    def clause(self) -> Clause:
        token = self.current
        if token.kind not in ("word", "string") or self.is_keyword("and", "or", "order"):
            raise self.fail("a field name")
        self.advance()
        operator = self.operator()
        if operator in ("in", "not in"):
            values = self.value_list()
        elif operator in ("is", "is not"):
            if not self.is_keyword("empty", "null"):
                raise self.fail("'EMPTY'")
            self.advance()
            values = (Empty(),)
        else:
            values = (self.value(),)
        return Clause(normalise_field(token.text), operator, values, token.position)

    def operator(self) -> str:
        token = self.current
        if token.kind == "op":
            self.advance()
            return token.text
        if self.is_keyword("in"):
            self.advance()
            return "in"
        if self.is_keyword("is"):
            self.advance()
            if self.is_keyword("not"):
                self.advance()
                return "is not"
            return "is"
        if self.is_keyword("not"):
            self.advance()
            if self.is_keyword("in"):
                self.advance()
                return "not in"
        raise JqlError(
            f"Error in the JQL Query: Expecting operator but got '{token.text}'. {_OPERATORS_TEXT} "
            f"(line 1, character {token.position + 1})"
        )

    def value(self) -> Value:
        token = self.current
        if token.kind == "string":
            self.advance()
            return token.text
        if token.kind != "word" or self.is_keyword("and", "or", "order"):
            raise self.fail("either a value, 'EMPTY' or a function")
        self.advance()
        if token.text.lower() in ("empty", "null"):
            return Empty()
        if self.current.kind == "(":
            self.advance()
            if self.current.kind != ")":
                raise self.fail("')'")
            self.advance()
            return Function(token.text.lower())
        return token.text

    def value_list(self) -> tuple[Value, ...]:
        if self.current.kind != "(":
            raise self.fail("'('")
        self.advance()
        values = [self.value()]
        while self.current.kind == ",":
            self.advance()
            values.append(self.value())
        if self.current.kind != ")":
            raise self.fail("')'")
        self.advance()
        return tuple(values)


def parse_jql(jql: str) -> JqlQuery:
    if len(jql) > MAX_JQL_LENGTH:
        raise JqlError(f"The JQL query is longer than {MAX_JQL_LENGTH} characters.")
    return _Parser(jql).query()
