"""Routers of the REST API (``/api``) and of operations (health, readiness, metrics)."""
