"""Operation kinds: one module per kind, each declaring its kind and exporting `bp`."""
