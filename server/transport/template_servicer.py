"""itsm.v1.TemplateService: the configured templates, and previews of them."""

from __future__ import annotations

from grpc import aio

from itsm.v1 import template_service_pb2, template_service_pb2_grpc
from server.service.templates import Templates
from server.transport.convert import struct_to_dict, template_to_proto, violations_to_proto
from server.transport.platforms import platform_name, platform_value


class TemplateServicer(template_service_pb2_grpc.TemplateServiceServicer):
    def __init__(self, templates: Templates) -> None:
        self._templates = templates

    async def ListTemplates(
        self, request: template_service_pb2.ListTemplatesRequest, context: aio.ServicerContext
    ) -> template_service_pb2.ListTemplatesResponse:
        specs = self._templates.list(platform_name(request.platform))
        return template_service_pb2.ListTemplatesResponse(
            templates=[template_to_proto(s) for s in specs]
        )

    async def GetTemplate(
        self, request: template_service_pb2.GetTemplateRequest, context: aio.ServicerContext
    ) -> template_service_pb2.GetTemplateResponse:
        spec = self._templates.get(request.name)
        return template_service_pb2.GetTemplateResponse(template=template_to_proto(spec))

    async def RenderTemplate(
        self, request: template_service_pb2.RenderTemplateRequest, context: aio.ServicerContext
    ) -> template_service_pb2.RenderTemplateResponse:
        preview = self._templates.preview(
            request.name,
            struct_to_dict(request.variables),
            request.variables.ByteSize(),
            request.job_id,
        )
        return template_service_pb2.RenderTemplateResponse(
            platform=platform_value(preview.platform),
            fields=preview.fields,
            violations=violations_to_proto(preview.violations),
        )
