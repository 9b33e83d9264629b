"""Helpers that start real processes for tests: Azurite and durablehost."""
