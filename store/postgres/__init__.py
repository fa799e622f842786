"""The PostgreSQL back end of the store (issue 10), beside the SQLite one.

`PgEventStore` (event_store) implements the engine's `EventLog` protocol on a
PostgreSQL database: the schema and its migrations (schema), the group-commit
writer with a gap-free global position order (writer, on store.group_commit),
the adapter that runs the shared fold and lease jobs on a psycopg connection
(adapter), the reads, which are store.reader's own queries (reader), the
LISTEN/NOTIFY change feed (feed), and the typed errors a server can answer
with (errors). Not yet reachable from the command line (`--db postgresql://`).
"""
