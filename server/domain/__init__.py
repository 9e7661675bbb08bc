"""The gateway's pure core: field rules, validation, templates, payloads, SLA policy, records, errors.

Nothing here performs I/O or imports grpc, sqlalchemy or aiohttp (a test enforces it).
"""
