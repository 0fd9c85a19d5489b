"""Model inference on Ray: one actor pool per model version, placed by the bundle's needs."""
