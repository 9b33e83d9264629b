"""The HTTP front: everything the host answers over HTTP.

HTTP triggers (`http_front`, with ASP.NET-style route templates in `routes` and function
keys in `keys`), the Durable Functions management API (`management`), and the durable
client's in-process shortcut to that API (`client_transport`).

May import durablehost.errors and the layers below the engine: model, wire, app. It does
not import the engine: the management API works on any `model.TaskHubClient`, which the
host hands it (the engine implements it).
"""
