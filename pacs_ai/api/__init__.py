"""The HTTP face of pacs-ai: app assembly, authentication, the REST API and operations."""
