"""The ledger: Peewee models, the guard against a lost or corrupt file, and the repository of named operations."""
