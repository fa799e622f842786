"""The PostgreSQL back end of the store (issue 10), beside the SQLite one.

So far: the schema and its migrations (`schema`), the group-commit writer with
a gap-free global position order (`writer`), the adapter that lets the shared
fold (store.projector) run on a psycopg connection (`adapter`), and the typed
errors a server can answer with (`errors`). Reads, the LISTEN/NOTIFY feed and
the `EventLog` implementation come next.
"""
