// The gateway's two services over the Connect protocol, to the page's own origin.
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { TemplateService } from "./gen/itsm/v1/template_service_pb";
import { TicketService } from "./gen/itsm/v1/ticket_service_pb";

export interface Api {
  tickets: Client<typeof TicketService>;
  templates: Client<typeof TemplateService>;
}

// Reads and previews answer fast; a create may retry a platform through the gateway's whole budget
// (timeout.total_seconds, 60 s at most), so it gets a little more than that.
export const READ_TIMEOUT_MS = 15_000;
export const CREATE_TIMEOUT_MS = 65_000;

export function makeApi(token: string): Api {
  const bearer: Interceptor = (next) => (request) => {
    if (token) request.header.set("Authorization", `Bearer ${token}`);
    return next(request);
  };
  const transport = createConnectTransport({
    // Relative: the calls go wherever the page came from, a path prefix behind a proxy included.
    baseUrl: ".",
    // Binary protobuf: an older gateway (a rolling deploy) skips fields it does not know yet,
    // where its strict JSON reader would refuse them; errors still come back as Connect JSON.
    useBinaryFormat: true,
    interceptors: [bearer],
  });
  return {
    tickets: createClient(TicketService, transport),
    templates: createClient(TemplateService, transport),
  };
}
