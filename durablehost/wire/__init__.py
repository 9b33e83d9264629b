"""The JSON shapes durablehost speaks: with the SDK (orchestration) and with clients (client)."""
