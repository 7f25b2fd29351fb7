"""Quota enforcement and provisioning for a Databricks teaching lab.

Layers, one folder each, enforced by the import contracts in .importlinter:
core (pure) < adapters (workspace, ledger, mail, files) < services (one use case each) < cli
(configuration, clock, command registry). The entry points in databricks/*.py only call cli.
"""
