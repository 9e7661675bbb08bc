"""Template use cases: the configured templates, and rendering one (a preview, or before a create)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from server.domain import errors
from server.domain.templates import (
    JobContext,
    TemplateOutcome,
    TemplateSpec,
    compiled_template,
    render_and_validate,
)
from server.domain.validation import Violation
from server.service.ports import Telemetry
from server.service.requests import quote
from server.service.settings import GatewayConfig


@dataclass(frozen=True)
class TemplatePreview:
    platform: str
    fields: dict[str, str]
    violations: list[Violation]


class Templates:
    def __init__(self, config: GatewayConfig, telemetry: Telemetry) -> None:
        self._config = config
        self._telemetry = telemetry

    def list(self, platform: str) -> list[TemplateSpec]:
        specs = self._config.templates.values()
        return sorted((s for s in specs if not platform or s.platform == platform), key=lambda s: s.name)

    def get(self, name: str) -> TemplateSpec:
        spec = self._config.templates.get(name)
        if spec is None:
            self._telemetry.template_error(name)
            raise errors.NotFound(f"template {quote(name)} not found")
        return spec

    def preview(
        self, name: str, variables: Mapping[str, Any], variables_size: int, job_id: str
    ) -> TemplatePreview:
        spec = self.get(name)
        outcome = self.render(spec, variables, variables_size, job_id)
        return TemplatePreview(spec.platform, outcome.rendered, outcome.violations)

    def render(
        self,
        spec: TemplateSpec,
        variables: Mapping[str, Any],
        variables_size: int,
        job_id: str,
        *,
        fit: bool = False,
    ) -> TemplateOutcome:
        # job.time is for people reading the ticket, not a comparison: the process's clock is right.
        job = JobContext(id=job_id, time=datetime.now(UTC))
        outcome = render_and_validate(
            compiled_template(spec),
            variables,
            job,
            self._config.field_mapping[spec.platform],
            self._config.limits,
            variables_size,
            fit=fit,
        )
        if outcome.violations:
            self._telemetry.template_error(spec.name)
            self._telemetry.validation_errors(spec.platform, [v.field for v in outcome.violations])
        return outcome
