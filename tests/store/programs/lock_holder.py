"""Hold a database lock with plain sqlite3 until told to let go.

usage: lock_holder.py DB exclusive|immediate

`exclusive`: PRAGMA locking_mode=EXCLUSIVE then BEGIN EXCLUSIVE, which in WAL
mode keeps even readers out. `immediate`: BEGIN IMMEDIATE, the write lock only.
Prints `locked`, waits for a line on stdin, commits and closes (an exclusive
locking mode keeps its lock until then), prints `released`, and exits at the
end of stdin.
"""

import sqlite3
import sys

conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive":
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
else:
    conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
conn.close()
print("released", flush=True)
sys.stdin.read()
