"""The wire layer: the JSON shapes durablehost speaks, in one place.

With the SDK (`orchestration`: the orchestration context, history events and actions)
and with clients (`client`: the management API's status and history bodies). The engine
and the store work on typed records; only this layer knows their JSON.

May import only durablehost.errors and the model layer.
"""
