"""The DIMSE face of the archive (pynetdicom): SCP handlers and the SCU for sending out."""
