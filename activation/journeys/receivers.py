"""Signal receivers (see services)."""
