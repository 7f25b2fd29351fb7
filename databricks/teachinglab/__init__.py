"""Quota enforcement and provisioning for a Databricks teaching lab.

Layers: a pure core (accounting, quota, report numbers), thin adapters (workspace_gateway is the
only module that imports databricks.sdk; ledger; transports) and services that the entry points
in databricks/*.py wire together.
"""
