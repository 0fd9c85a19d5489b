"""Every module that declares tables, imported so that ``Base.metadata`` is complete.

Alembic's environment and the schema tests import this one module; a part that adds tables
adds its module here.
"""

from pacs_ai.archive import schema as archive_schema
from pacs_ai.security import schema as security_schema

__all__ = ["archive_schema", "security_schema"]
