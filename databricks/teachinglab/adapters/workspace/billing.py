"""SQL warehouses and the Statement Execution API: how the billing system table is read."""
from __future__ import annotations

from databricks.sdk.service import sql

from databricks.teachinglab.adapters.deadline import Deadline
from databricks.teachinglab.core.model import StatementResult


class BillingApi:
    def warehouse_state(self, warehouse_id: str) -> str:
        """RUNNING, STOPPED, STARTING, ... (SQL Warehouses API); a statement starts a stopped one."""
        got = self._retry(f"warehouse {warehouse_id}", lambda: self.client.warehouses.get(warehouse_id))
        return got.state.value if got.state else "UNKNOWN"

    def warehouses(self) -> list[tuple[str, str, str]]:
        """(id, name, state) of every SQL warehouse the lab can see."""
        return [(w.id or "", w.name or w.id or "", w.state.value if w.state else "UNKNOWN")
                for w in self._retry("SQL warehouses", lambda: list(self.client.warehouses.list()))]

    def workspace_id(self) -> int:
        return self._retry("workspace id", self.client.get_workspace_id)

    def sql(self, warehouse_id: str, statement: str, parameters: dict[str, str], *, budget_seconds: float,
            poll_seconds: float = 2.0) -> StatementResult:
        """A read-only statement on a SQL warehouse (Statement Execution API), rows INLINE as
        JSON_ARRAY (strings). It waits up to 10 s per request and polls; one still running after
        `budget_seconds` (a stopped warehouse starting, a slow query) is canceled and said so. A
        statement that fails to run comes back as a 200 with FAILED (the API's documented way)."""
        api = self.client.statement_execution
        params = [sql.StatementParameterListItem(name=k, value=v) for k, v in parameters.items()]
        budget = Deadline(budget_seconds)
        response = self._retry("SQL statement", lambda: api.execute_statement(
            statement=statement, warehouse_id=warehouse_id, parameters=params, wait_timeout="10s",
            on_wait_timeout=sql.ExecuteStatementRequestOnWaitTimeout.CONTINUE,
            disposition=sql.Disposition.INLINE, format=sql.Format.JSON_ARRAY))
        statement_id = response.statement_id
        while response.status and response.status.state in (sql.StatementState.PENDING, sql.StatementState.RUNNING):
            if not budget.allows_sleep(poll_seconds):
                self._retry("cancel statement", lambda: api.cancel_execution(statement_id))
                return StatementResult("TIMEOUT", [], f"still {response.status.state.value} after "
                                                     f"{budget_seconds:g} s; canceled")
            self._sleep(poll_seconds)
            response = self._retry("SQL statement status", lambda: api.get_statement(statement_id))
        state = response.status.state.value if response.status and response.status.state else "UNKNOWN"
        if state != "SUCCEEDED":
            error = response.status.error if response.status else None
            code = error.error_code.value if error and error.error_code else state
            return StatementResult(state, [], f"{code}: {error.message if error else 'no detail'}")
        rows = list(response.result.data_array or []) if response.result else []
        chunk = response.result.next_chunk_index if response.result else None
        while chunk is not None:
            part = self._retry("SQL result chunk", lambda: api.get_statement_result_chunk_n(statement_id, chunk))
            rows += part.data_array or []
            chunk = part.next_chunk_index
        return StatementResult("SUCCEEDED", rows, None)
