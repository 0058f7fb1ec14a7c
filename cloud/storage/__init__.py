"""The cloud's storage: the port (port.py), the schema and its versioned steps (schema.py), the
SQL both backends share (sql*.py), the SQLite and PostgreSQL adapters, and factory.py, where a
URL picks an adapter. Importing this package imports no adapter."""
