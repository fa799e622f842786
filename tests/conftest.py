"""Fixtures shared by every test folder."""

# pg_server (session) and pg_url (per test): a throwaway PostgreSQL server, see tests/pg.py.
# backend and db_address: one test on both store back ends, see tests/backends.py.
pytest_plugins = ["tests.pg", "tests.backends"]
