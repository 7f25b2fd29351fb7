"""Azure Communication Services Email (`EMAIL_TRANSPORT=acs`), through azure-communication-email.

The client's defaults suit an interactive program, not a cron job killed after 30 s: it polls
every 30 s and waits up to 300 s to connect and to read. Here every call is bounded by what is
left of the run's mail budget, polling is fast, and the client's own retries are off (the
outbox retries on later runs, honouring Retry-After).

`from_connection_string` always rewrites the endpoint to https, so the connection string is
parsed here and the endpoint kept as written: http://127.0.0.1:PORT works for tests and for a
local relay. A private CA is honoured through REQUESTS_CA_BUNDLE.

Each message gets an operation id derived from its outbox key. Before sending a message that
was attempted before (a run killed mid-send, or an operation still running at the end of a
budget), the operation is looked up first, so it is never sent twice.
"""
from __future__ import annotations

import base64
import json
import logging
import uuid


from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.rest import HttpRequest

from databricks.teachinglab.adapters.deadline import Deadline
from databricks.teachinglab.adapters.mail.transports import (PermanentSendError, StatusUnknown, StillRunning,
                                                              TransientSendError, one_line)
from databricks.teachinglab.core.messages import EVENT_HEADER, OutgoingMail
from databricks.teachinglab.core.settings import MailSettings

logger = logging.getLogger(__name__)
OPERATION_NAMESPACE = uuid.UUID("6f1c1d2e-8b1f-4c55-9a57-0d7c2a0b7e11")
API_VERSION = "2025-09-01"
PERMANENT = {400, 401, 403, 404, 413, 422}


class AcsConfigError(ValueError):
    pass


def operation_id(dedupe_key: str) -> str:
    return str(uuid.uuid5(OPERATION_NAMESPACE, dedupe_key))


class AcsTransport:
    name = "acs"

    def __init__(self, mail: MailSettings, *, connect_timeout: float = 5, read_timeout: float = 10,
                 poll_interval: float = 1.5):
        # `mail` was parsed and checked by config.load_settings
        endpoint, key = mail.acs_endpoint, mail.acs_key
        if not endpoint or not key:
            raise AcsConfigError("EMAIL_TRANSPORT=acs needs AZURE_EMAIL_CONNECTION_STRING, or "
                                 "AZURE_EMAIL_ENDPOINT and AZURE_EMAIL_ACCESS_KEY")
        from azure.communication.email import EmailClient
        ca_bundle = mail.ca_bundle
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.poll_interval = poll_interval  # the outbox waits this long before its one status check of a run
        self.made: list[str] = []           # requests made (send | status), for the outbox's pacing
        self.client = EmailClient(endpoint, AzureKeyCredential(key), retry_total=0,
                                  connection_timeout=connect_timeout, read_timeout=read_timeout,
                                  connection_verify=ca_bundle or True)

    # -- the Transport protocol -------------------------------------------------------------
    def send(self, message: OutgoingMail, *, deadline: Deadline) -> str:
        op_id = operation_id(message.dedupe_key)
        if message.attempts > 1 or message.accepted:
            status = self._status(op_id, deadline)
            if status is not None:
                return self._settle(op_id, status)
        payload = self._payload(message)
        try:
            json.dumps(payload).encode("utf-8")
        except (ValueError, UnicodeError) as err:  # text no encoder takes (a lone surrogate): never sendable
            raise PermanentSendError(f"the message cannot be encoded ({type(err).__name__}: {err})") from err
        try:
            # No client-side polling: the outbox asks about each accepted message once a run, so
            # forty messages cost forty sends and forty status checks, not forty waits.
            self.made.append("send")
            self.client.begin_send(payload, operation_id=op_id, polling=False,
                                   **self._timeouts(deadline))
        except HttpResponseError as err:
            raise self._classify(err) from err
        except (ServiceRequestError, ServiceResponseError) as err:
            raise TransientSendError(f"ACS unreachable: {err}") from err
        raise StillRunning(op_id)

    # -- helpers ----------------------------------------------------------------------------
    def _timeouts(self, deadline: Deadline) -> dict:
        left = max(0.5, deadline.remaining())
        return {"connection_timeout": min(self.connect_timeout, left), "read_timeout": min(self.read_timeout, left)}

    def _status(self, op_id: str, deadline: Deadline) -> dict | None:
        """The operation's status; None when the service never had it (safe to send). A status
        that cannot be read (429, 5xx, the network) is StatusUnknown: neither an attempt nor a
        failure, asked again after Retry-After."""
        request = HttpRequest("GET", f"/emails/operations/{op_id}", params={"api-version": API_VERSION})
        self.made.append("status")
        try:
            response = self.client.send_request(request, **self._timeouts(deadline))
        except (ServiceRequestError, ServiceResponseError) as err:
            raise StatusUnknown(f"ACS unreachable: {err}") from err
        if response.status_code == 404:
            return None  # never reached the service: safe to send
        if response.status_code >= 400:
            failure = self._classify(HttpResponseError(response=response))
            if isinstance(failure, TransientSendError):
                raise StatusUnknown(str(failure), retry_after=failure.retry_after)
            raise failure
        return response.json()

    @staticmethod
    def _settle(op_id: str, status: dict) -> str:
        state = status.get("status")
        if state == "Succeeded":
            return op_id
        if state in ("Failed", "Canceled"):
            error = (status.get("error") or {}).get("message", state)
            raise PermanentSendError(f"ACS operation {op_id} {state.lower()}: {error}")
        raise StillRunning(op_id)

    @staticmethod
    def _classify(err: HttpResponseError) -> Exception:
        code = err.status_code or 0
        text = f"ACS answered {code}: {err.message}"
        if code in PERMANENT:
            return PermanentSendError(text)
        retry_after = None
        if err.response is not None:
            try:
                retry_after = float(err.response.headers.get("Retry-After") or 0) or None
            except ValueError:
                retry_after = None
        return TransientSendError(text, retry_after=retry_after)

    @staticmethod
    def _payload(message: OutgoingMail) -> dict:
        def addresses(text: str) -> list[dict]:
            return [{"address": a.strip()} for a in text.split(",") if a.strip()]

        payload = {
            "senderAddress": message.sender,
            "recipients": {"to": addresses(message.to_addrs), "cc": addresses(message.cc_addrs or "")},
            "content": {"subject": one_line(message.subject), "plainText": message.text_body, "html": message.html_body},
            "headers": {EVENT_HEADER: message.event},
        }
        attachments = [{"name": a.filename, "contentType": a.content_type,
                        "contentInBase64": base64.b64encode(a.data).decode(),
                        **({"contentId": a.content_id} if a.content_id else {})}
                       for a in message.attachments]
        if attachments:
            payload["attachments"] = attachments
        return payload
