"""One module per DIMSE service; each ``handle_<op>(event, ctx)`` lists its statuses."""
