"""durablehost: run Durable Functions Python apps locally, on an embedded SQLite task hub.

See docs/durablehost.md.
"""
