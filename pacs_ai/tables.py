"""Every module that declares tables, imported so that ``Base.metadata`` is complete.

Alembic's environment and the schema tests import this one module; a part that adds tables
adds its module here.
"""

from pacs_ai.archive import schema as archive_schema
from pacs_ai.pipeline import schema as pipeline_schema
from pacs_ai.qa import schema as qa_schema
from pacs_ai.registry import schema as registry_schema
from pacs_ai.security import schema as security_schema
from pacs_ai.triage import schema as triage_schema

__all__ = [
    "archive_schema",
    "pipeline_schema",
    "qa_schema",
    "registry_schema",
    "security_schema",
    "triage_schema",
]
