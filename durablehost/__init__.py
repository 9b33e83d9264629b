"""durablehost: run Durable Functions Python apps locally, on an embedded SQLite task hub.

One subpackage per layer; a layer imports only the layers below it (and
`durablehost.errors`), as tests/durablehost/test_layers.py checks:

    host.py, cli.py, testing.py, process.py   the composition: start the layers together
    front/      HTTP triggers, the management API, the durable client's in-process calls
    triggers/   functions the host starts on its own (timer triggers)
    engine/     durable orchestration: dispatch loops, episodes, replay, activities
    workers/    worker processes that run the app's activities
    app/        the user's Function App: settings, loading, calling its functions
    store/      the task hub store interface and its SQLite implementation
    wire/       the JSON shapes spoken with the SDK and with clients
    model/      typed records: history events, instance status, TaskHubClient

front and triggers do not import the engine: the host hands the management API the
engine as a `model.TaskHubClient`, and a triggered function reaches it through its durable
client binding. app sits below the engine because activity dispatch calls the app's
functions. `errors.py` (the exception tree) and `tuning.py` (the CLI's interpreter
settings) import nothing from durablehost.

See docs/durablehost.md.
"""
