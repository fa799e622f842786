"""Fixtures shared by every test folder."""

# pg_server (session) and pg_url (per test): a throwaway PostgreSQL server, see tests/pg.py.
pytest_plugins = ["tests.pg"]
