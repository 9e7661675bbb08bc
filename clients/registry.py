"""Platform name -> its PlatformSpec. The built-in platforms register themselves here; a test (or a
plug-in) adds another with register(). Nothing else in the gateway names a platform."""

from __future__ import annotations

from clients.platform import PlatformSpec

_SPECS: dict[str, PlatformSpec] = {}
_loaded = False


def register(spec: PlatformSpec) -> None:
    """Adds (or replaces) a platform."""
    _load_built_in()
    _SPECS[spec.name] = spec


def unregister(name: str) -> None:
    _SPECS.pop(name, None)


def specs() -> dict[str, PlatformSpec]:
    """Every registered platform, built-in ones first."""
    _load_built_in()
    return dict(_SPECS)


def spec(name: str) -> PlatformSpec:
    known = specs()
    if name not in known:
        raise ValueError(f"unknown platform {name!r}; known: {', '.join(known)}")
    return known[name]


def _load_built_in() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    # Imported here, not at the top: the platform modules import the HTTP machinery, which a caller
    # of the registry that only needs names should not pay for at import time.
    from clients.jira import SPEC as jira
    from clients.servicenow import SPEC as servicenow

    for built_in in (servicenow, jira):
        _SPECS.setdefault(built_in.name, built_in)
