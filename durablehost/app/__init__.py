"""The app layer: the user's Function App as the host sees it.

Reading its settings before import (`config`: host.json, local.settings.json), importing
and indexing it (`loader`), and calling its functions the way the Functions Python worker
does: trigger functions (`invocation`) and activity functions (`activity_invocation`).

May import only durablehost.errors. The engine (activities), the HTTP front and the
triggers all call the app through this layer, so it sits below all three.
"""
