"""The triggers layer: functions the host starts on its own, not on an HTTP request.

Timer triggers today (`timer`); queue and blob triggers belong here too.

May import durablehost.errors and the layers below the engine: model, wire, store, app.
A trigger calls its function through app.invocation; the function's durable client binding
reaches the engine through the management API. Never the HTTP front or the host.
"""
