"""Marshmallow schemas: request validation and response shapes (and so the OpenAPI spec)."""
