"""The layer rules, checked on every module's imports (function-level ones included), so they are
kept and not just written down: transport -> service -> domain; storage implements the service's
ports; only the transport speaks gRPC; clients and the sandbox stand apart from the gateway; no
import cycles anywhere."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "clients", "sandbox")

# The platform contract: the parts of clients/ with no I/O, which the service layer may use.
CLIENTS_CONTRACT = ("clients.platform", "clients.errors", "clients.settings", "clients.config_reader")
THIRD_PARTY_IO = ("grpc", "grpc_health", "grpc_reflection", "grpc_status", "sqlalchemy", "asyncpg",
                  "aiosqlite", "alembic", "aiohttp", "prometheus_client", "py_grpc_prometheus", "yarl")

# layer -> (what of ours it may import, third-party roots it must not import)
RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "server.domain": (("server.domain",), (*THIRD_PARTY_IO, "google", "itsm")),
    "server.service": (("server.domain", "server.service", *CLIENTS_CONTRACT), (*THIRD_PARTY_IO, "google", "itsm")),
    "server.storage": (("server.domain", "server.service", "server.storage"), ("grpc", "aiohttp", "itsm", "google")),
    "server.transport": (
        ("server.transport", "server.service", "server.domain", "server.observability", "itsm"),
        ("sqlalchemy", "asyncpg", "aiosqlite", "alembic"),
    ),
    "server.observability": (
        ("server.observability", "server.domain", "clients.redaction"),
        ("grpc", "sqlalchemy", "itsm"),
    ),
    "server.runtime": (("server", "clients", "sandbox", "itsm"), ()),
    "clients": (("clients",), ("grpc", "sqlalchemy", "itsm")),
    "sandbox": (("sandbox",), ("grpc", "sqlalchemy", "itsm")),
}
OURS = ("server", "clients", "sandbox", "itsm")


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts and "versions" in path.parts:
                continue  # frozen schema snapshots import only alembic and sqlalchemy
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            yield name, path


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # "from server.domain import errors" imports the module server.domain.errors
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer_of(module: str) -> str:
    for layer in sorted(RULES, key=len, reverse=True):
        if within(module, (layer,)):
            return layer
    return ""


def test_every_module_belongs_to_a_layer() -> None:
    loose = [m for m, _ in modules() if not layer_of(m) and m not in ("server", "server.defaults")]
    assert loose == []


@pytest.mark.parametrize("module,path", list(modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_follow_the_layer_rules(module: str, path: Path) -> None:
    layer = layer_of(module)
    if not layer:
        return
    allowed, forbidden = RULES[layer]
    wrong = sorted(
        name for name in imports(path)
        if (within(name, OURS) and not within(name, allowed)) or within(name.split(".")[0], forbidden)
    )
    assert wrong == [], f"{module} ({layer}) must not import {wrong}"


def test_no_import_cycles() -> None:
    known = {name for name, _ in modules()}
    graph = {
        name: {target for target in imports(path) if target in known and target != name}
        for name, path in modules()
    }
    # A package's __init__ importing its own submodules is not a cycle of modules.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target):], target] if target in trail else [node, target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def _code_words(path: Path) -> Iterator[tuple[int, str]]:
    """Identifiers and string literals of a module, docstrings and comments left out."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value
        elif isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr


def test_the_core_never_names_a_platform() -> None:
    """No server module names a platform in its code (comments and docs may): a third platform is a
    module in clients/ and one in sandbox/, and server/ does not change. The dev banner's example
    commands are the one exception."""
    offenders = [
        f"{module}:{line}: {word!r}"
        for module, path in modules()
        if module.startswith("server.") and module != "server.runtime.devmode"
        for line, word in _code_words(path)
        if "servicenow" in word.lower() or "jira" in word.lower()
    ]
    assert offenders == []
