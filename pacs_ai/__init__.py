"""pacs-ai: an AI-augmented PACS."""

__version__ = "0.1.0"
