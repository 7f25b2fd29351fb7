"""SMTP delivery (`EMAIL_TRANSPORT=smtp`): multipart plain text + HTML, the event header, STARTTLS
by default, AUTH when a username is set. Every socket operation is bounded by what is left of
the run's mail budget.

SMTP has no way to ask "did you get this already?". After a kill between the server's 250 and
the outbox update, the message is sent again with the same Message-ID, which most mail clients
show once; that window is a few milliseconds wide.
"""
from __future__ import annotations

import logging
import smtplib
import socket
import ssl

from databricks.teachinglab.adapters.deadline import Deadline
from databricks.teachinglab.adapters.mail.transports import PermanentSendError, TransientSendError, to_email
from databricks.teachinglab.core.messages import OutgoingMail
from databricks.teachinglab.core.settings import MailSettings

logger = logging.getLogger(__name__)


class SmtpConfigError(ValueError):
    pass


class SmtpTransport:
    name = "smtp"

    def __init__(self, mail: MailSettings, *, timeout: float = 10):
        # `mail` was parsed and checked by config.load_settings
        self.host = mail.smtp_host
        if not self.host:
            raise SmtpConfigError("EMAIL_TRANSPORT=smtp needs SMTP_HOST (and usually SMTP_PORT, "
                                  "SMTP_USERNAME, SMTP_PASSWORD)")
        self.port = mail.smtp_port
        self.username = mail.smtp_username
        self.password = mail.smtp_password
        self.starttls = mail.smtp_starttls
        self.timeout = timeout
        cafile = mail.smtp_ca_file
        self.tls_context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()

    def send(self, message: OutgoingMail, *, deadline: Deadline) -> str:
        left = deadline.remaining()
        if left <= 0.2:
            raise TransientSendError("no mail budget left")
        mail = to_email(message)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=min(self.timeout, left)) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=self.tls_context)
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password)
                refused = smtp.send_message(mail)
        except smtplib.SMTPNotSupportedError as err:  # a non-ASCII address the relay cannot take (no SMTPUTF8)
            raise PermanentSendError(f"SMTP {self.host} cannot take this message: {err}") from err
        except smtplib.SMTPAuthenticationError as err:
            raise PermanentSendError(f"SMTP login refused ({err.smtp_code})") from err
        except smtplib.SMTPRecipientsRefused as err:
            codes = {code for code, _ in err.recipients.values()}
            if all(500 <= c < 600 for c in codes):
                raise PermanentSendError(f"every recipient refused: {sorted(err.recipients)}") from err
            raise TransientSendError(f"recipients deferred: {sorted(err.recipients)}") from err
        except smtplib.SMTPResponseException as err:
            text = f"SMTP {err.smtp_code}: {err.smtp_error!r}"
            if 500 <= err.smtp_code < 600:
                raise PermanentSendError(text) from err
            raise TransientSendError(text) from err
        except (smtplib.SMTPException, ssl.SSLError, socket.timeout, OSError) as err:
            raise TransientSendError(f"SMTP {self.host}:{self.port} unavailable: {err}") from err
        if refused:
            logger.warning("mail %s: some recipients refused: %s", message.dedupe_key, sorted(refused))
        return mail["Message-ID"]
