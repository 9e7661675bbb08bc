"""The operator's guide (docs/ITSM_INTEGRATION_GUIDE.md) says what the code does.

What the guide must name is derived from the code, not listed here: the configuration keys from the
parser itself (every key it asks a block for, recorded while it reads the shipped configuration), the
command line from its argparse parser (flags, and each environment variable and default its help
states), the metric families from the registry, the alerts from deploy/prometheus/alerts.yml. So a key,
flag, metric or alert added without a word in the guide fails here.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from clients.config_reader import ConfigObject
from server.runtime.cli import build_parser
from server.runtime.config import GatewayConfig, parse_config
from tests.test_dashboard import service_registry

ROOT = Path(__file__).resolve().parent.parent
GUIDE_PATH = "docs/ITSM_INTEGRATION_GUIDE.md"
GUIDE = ROOT / GUIDE_PATH
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
SHIPPED = ROOT / "config/itsm_config.json"
ENV = {
    "SERVICENOW_USERNAME": "user", "SERVICENOW_PASSWORD": "secret", "SN_CLIENT_ID": "id",
    "SN_CLIENT_SECRET": "client-secret", "JIRA_EMAIL": "ops@example.com", "JIRA_API_TOKEN": "token",
    "JIRA_PAT": "pat",
}

# ------------------------------------------------------------------------------ reading the guide

_HEADING = re.compile(r"(#{1,6}) (.+)")


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def _prose_lines(text: str) -> Iterator[str]:
    """Lines outside fenced code blocks (a `# comment` in a shell block is not a heading)."""
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            yield ""
        else:
            yield "" if fenced else line


def sections(text: str) -> list[tuple[int, str, str]]:
    """(level, title, body up to the next heading), in order."""
    found: list[tuple[int, str, list[str]]] = []
    lines = text.splitlines()
    for number, line in enumerate(_prose_lines(text)):
        heading = _HEADING.fullmatch(line)
        if heading:
            found.append((len(heading.group(1)), heading.group(2).strip(), []))
        elif found:
            found[-1][2].append(lines[number])
    return [(level, title, "\n".join(body)) for level, title, body in found]


def slug(title: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    text = re.sub(r"[^\w\- ]", "", title.lower())
    return text.replace(" ", "-")


def anchors(text: str) -> dict[str, str]:
    """anchor -> heading title; repeated titles get -1, -2... as GitHub numbers them."""
    found: dict[str, str] = {}
    for _, title, _ in sections(text):
        base = anchor = slug(title)
        n = 0
        while anchor in found:
            n += 1
            anchor = f"{base}-{n}"
        found[anchor] = title
    return found


def section(title: str) -> str:
    """A level-2 section's text, its subsections included."""
    text = guide()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_slugs_are_githubs() -> None:
    assert slug("Exactly-once, for an operator") == "exactly-once-for-an-operator"
    assert slug("`platforms.<name>.auth`") == "platformsnameauth"
    assert slug("ItsmMarkerDropped") == "itsmmarkerdropped"
    text = "## A\n```sh\n# not a heading\n```\nbody\n### A\n"
    assert list(anchors(text)) == ["a", "a-1"]
    assert sections(text)[0][2] == "```sh\n# not a heading\n```\nbody"


# ------------------------------------------------------------------------------ alerts and runbooks


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_summary_a_description_and_a_runbook_in_the_guide() -> None:
    known = anchors(guide())
    rules = alert_rules()
    assert len(rules) >= 12
    for rule in rules:
        name, annotations = rule["alert"], rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert str(annotations.get(key, "")).strip(), f"{name}: no {key}"
        url = re.fullmatch(r"(?P<path>[\w/.]+)#(?P<anchor>[a-z0-9-]+)", annotations["runbook_url"])
        assert url, f"{name}: runbook_url {annotations['runbook_url']!r} is not <path>#<anchor>"
        assert url["path"] == GUIDE_PATH and (ROOT / url["path"]).is_file(), name
        assert known.get(url["anchor"]) == name, f"{name}: no runbook heading #{url['anchor']} in the guide"


def test_every_runbook_is_for_an_alert_and_says_what_it_means_how_to_check_and_what_to_do() -> None:
    alerts = {rule["alert"] for rule in alert_rules()}
    runbooks = {title: body for level, title, body in sections(section("Alerts and runbooks")) if level == 3}
    assert set(runbooks) == alerts
    for title, body in runbooks.items():
        for part in ("**Means.**", "**Check.**", "**Do.**"):
            assert part in body, f"runbook {title}: no {part}"
    table = section("Alerts and runbooks").split("\n### ", 1)[0]
    for name in alerts:
        assert f"| [{name}](#{name.lower()}) |" in table, f"{name} missing from the alerts table"


def test_links_inside_the_guide_resolve() -> None:
    text, known = guide(), anchors(guide())
    for target in re.findall(r"\]\((#[^)]+)\)", text):
        assert target[1:] in known, f"link to {target}: no such heading"
    for target in re.findall(r"\]\((\.\./[^)#]+)", text):
        assert (GUIDE.parent / target).resolve().is_file(), f"link to {target}: no such file"


# ------------------------------------------------------------------------------ configuration


def shipped() -> dict[str, Any]:
    return json.loads(SHIPPED.read_text(encoding="utf-8"))


def other_auth_kinds(raw: dict[str, Any]) -> dict[str, Any]:
    """The shipped configuration with ServiceNow on OAuth and Jira on a personal access token, so the
    parser asks for those kinds' keys too."""
    raw = copy.deepcopy(raw)
    raw["platforms"]["servicenow"]["auth"] = {
        "type": "oauth", "username_env": "SERVICENOW_USERNAME", "password_env": "SERVICENOW_PASSWORD",
        "client_id_env": "SN_CLIENT_ID", "client_secret_env": "SN_CLIENT_SECRET",
    }
    raw["platforms"]["jira"]["auth"] = {"type": "bearer", "token_env": "JIRA_PAT"}
    return raw


def accepted_keys(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    """(JSON path of an object, key) for every key the parser asks for, present or not."""
    asked: set[tuple[str, str]] = set()
    for method in ("get", "need", "obj"):
        original = getattr(ConfigObject, method)

        def recording(self: ConfigObject, key: str, *args: Any, _original: Any = original) -> Any:
            asked.add((self.path, key))
            return _original(self, key, *args)

        monkeypatch.setattr(ConfigObject, method, recording)
    for raw in (shipped(), other_auth_kinds(shipped())):
        parse_config(raw, ENV)
    monkeypatch.undo()
    return asked


# Objects whose keys are names (platforms, templates, priorities), not configuration keys.
_NAMED = re.compile(r"platforms|field_mapping|templates|sla\.targets(\.[^.]+)?|alertmanager\.receivers")


def _placeholder_match(pattern: str, path: str) -> bool:
    """`platforms.<name>.auth` covers platforms.jira.auth."""
    wanted, given = pattern.split("."), path.split(".")
    return len(wanted) == len(given) and all(
        w == g or (w.startswith("<") and w.endswith(">")) for w, g in zip(wanted, given, strict=True)
    )


def config_sections() -> dict[str, str]:
    """`dotted.path` heading -> its text, from the configuration reference."""
    found = {}
    for _, title, body in sections(section("Configuration reference")):
        path = re.fullmatch(r"`([\w.<>$]+)`", title)
        if path:
            found[path.group(1)] = body
    return found


def test_every_configuration_key_the_parser_accepts_is_documented_in_its_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = accepted_keys(monkeypatch)
    documented = config_sections()
    top_level = section("Configuration reference").split("\n### ", 2)[1]
    assert len(asked) > 80
    blocks = {path for path, _ in asked}
    assert {"platforms.servicenow.lifecycle", "platforms.jira.lifecycle", "platforms.jira.dedup"} <= blocks
    for path, key in sorted(asked):
        if _NAMED.fullmatch(path):
            continue
        if path == "":
            assert f"| `{key}` |" in top_level, f"top-level key {key} missing from the guide"
            continue
        candidates = [body for heading, body in documented.items() if _placeholder_match(heading, path)]
        assert candidates, f"no section of the configuration reference covers {path}"
        assert any(f"`{key}`" in _row_keys(body) for body in candidates), f"{path}.{key} has no row in the guide"


def _row_keys(body: str) -> str:
    """The first cells of a section's table rows: where a key gets its own explanation."""
    return " ".join(line.split("|")[1] for line in body.splitlines() if line.startswith("| `"))


def defaults_block() -> dict[str, Any]:
    block = guide().split("<!-- defaults -->", 1)[1]
    return json.loads(block.split("```json", 1)[1].split("```", 1)[0])


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _bare(raw: dict[str, Any]) -> dict[str, Any]:
    """The shipped configuration with every optional key left out."""
    raw = copy.deepcopy(raw)
    for block in ("retry_policy", "timeout", "limits", "idempotency"):
        raw.pop(block, None)
    raw["sla"] = {"targets": raw["sla"]["targets"]}
    for name, platform in raw["platforms"].items():
        raw["platforms"][name] = {k: platform[k] for k in ("enabled", "base_url", "auth")}
    return raw


def _compared(config: GatewayConfig) -> tuple[Any, ...]:
    return (config.platforms, config.retry_policy, config.timeout, config.sla, config.limits,
            config.idempotency)


def test_every_key_at_its_default_is_what_leaving_it_out_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    block = defaults_block()
    bare = _bare(shipped())
    assert _compared(parse_config(_merge(bare, block), ENV)) == _compared(parse_config(bare, ENV))
    # ... and it spells out every optional key of those blocks.
    flat: set[tuple[str, str]] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict) and not path.endswith("statuses"):
            for key, item in value.items():
                flat.add((path, key))
                walk(item, f"{path}.{key}" if path else key)

    walk(block, "")
    # Required keys and named objects have no default to spell out.
    required = {"enabled", "base_url", "auth", "targets"}
    for path, key in accepted_keys(monkeypatch):
        optional = key not in required and ".auth" not in path and not path.startswith("sla.targets")
        if path.split(".")[0] in block and not _NAMED.fullmatch(path) and optional:
            assert (path, key) in flat, f"{path}.{key} missing from the defaults block"


# ------------------------------------------------------------------------------ command line


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_and_option_is_documented() -> None:
    text = guide()
    commands = section("Command line")
    for name, parser in subcommands().items():
        assert f"| `{name}" in commands, f"command {name} missing from the guide"
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert re.search(rf"{re.escape(option)}(?![\w-])", text), f"{name} {option} undocumented"


def test_every_environment_variable_and_default_the_help_states_is_in_the_options_table() -> None:
    rows = [line for line in section("Command line").splitlines() if line.startswith("| `--")]
    stated = 0
    for parser in subcommands().values():
        for action in parser._actions:
            found = re.search(r"env (ITSM_\w+); default ([^)]+)\)", action.help or "")
            if not found:
                continue
            stated += 1
            flag, variable, default = action.option_strings[0], found.group(1), found.group(2)
            row = [r for r in rows if r.startswith(f"| `{flag}`")]
            assert row, f"{flag} has no row in the options table"
            assert f"`{variable}`" in row[0] and f"`{default}`" in row[0], f"{flag}: {row[0]}"
    assert stated >= 6


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    read = set()
    for source in (ROOT / "server").rglob("*.py"):
        read.update(re.findall(r'(?:environ\.get|_env_int)\(\s*"(ITSM_\w+)"', source.read_text(encoding="utf-8")))
    assert {"ITSM_CONFIG", "ITSM_DATABASE_URL", "ITSM_LOG_LEVEL", "ITSM_LOG_FORMAT"} <= read
    for variable in read:
        assert f"`{variable}`" in guide(), f"{variable} undocumented"


def test_the_ports_table_gives_the_command_lines_defaults() -> None:
    ports = [line for line in section("Architecture").splitlines() if line.startswith("| ") and "`--" in line]
    serve = subcommands()["serve"]
    for action in serve._actions:
        found = re.search(r"env (ITSM_\w+_PORT); default (\d+)", action.help or "")
        if found:
            row = [r for r in ports if f"`{action.option_strings[0]}`" in r]
            assert row and f"`{found.group(2)}`" in row[0] and f"`{found.group(1)}`" in row[0], action.option_strings


# ------------------------------------------------------------------------------ metrics


def test_every_metric_family_is_explained() -> None:
    metrics = section("Monitoring").split("\n### Logs", 1)[0]
    for family in service_registry().collect():
        # As scraped: a counter's samples end in _total, which prometheus_client's family name drops.
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}`" in metrics, f"{name} missing from the guide's metrics table"


# ------------------------------------------------------------------------------ the READMEs' links


def _guide_links(path: Path) -> list[str]:
    """Anchors (or "" for the top) of every Markdown link from `path` to the guide."""
    text = path.read_text(encoding="utf-8")
    found = []
    for target in re.findall(r"\]\(([^)]+)\)", text):
        file, _, anchor = target.partition("#")
        if file and (path.parent / file).resolve() == GUIDE.resolve():
            found.append(anchor)
    return found


@pytest.mark.parametrize("readme", ["README.md", "deploy/README.md"])
def test_links_to_the_guide_resolve(readme: str) -> None:
    links = _guide_links(ROOT / readme)
    assert links, f"{readme} does not link to the guide"
    known = anchors(guide())
    for anchor in links:
        assert not anchor or anchor in known, f"{readme} links to #{anchor}: no such heading in the guide"


def test_the_readme_links_to_the_guide_from_the_top_and_from_its_operational_sections() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    top = readme.split("\n## ", 1)[0]
    assert GUIDE_PATH in top
    bodies = {title: body for _, title, body in sections(readme)}
    for heading in ("Exactly once, for every write", "Metrics, logs, dashboard", "Running in production",
                    "Caller authentication", "Configuration", "The sandbox"):
        body = next(body for title, body in bodies.items() if title.startswith(heading))
        assert GUIDE_PATH in body, f"README section {heading!r} does not link to the guide"
