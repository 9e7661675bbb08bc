"""Persistence: the database engine, the schema, repositories, page tokens and migrations."""
