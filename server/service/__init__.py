"""Use cases over small ports: ticket creation and its exactly-once engine, queries, templates,
reconciliation and SLA sync. Imports only the domain and the platform contract (clients.platform,
clients.errors, clients.settings); storage and platform clients are handed in as ports."""
