"""The app-side framework for long-running operations (see docs/operations.md)."""
