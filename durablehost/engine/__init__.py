"""The engine layer: durable orchestration over a task hub store.

The dispatch loops (`engine`), one episode's plan (`episodes`) and its replay through the
SDK (`executor`, `sdk_context`), activity dispatch (`activities`), durable timers
(`due_messages`), group commit of starts (`start_batch`) and rewind (`rewind`).

May import durablehost.errors and the layers below it: model, wire, store, app. Never the
HTTP front, the triggers or the host: they reach the engine through the
`model.TaskHubClient` protocol it implements, or are composed with it by the host.
"""
