"""The archive: what is stored and how it is found."""
