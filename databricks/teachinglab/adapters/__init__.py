"""The outside world: the workspace (the only module importing databricks.sdk), the ledger, mail, report files."""
