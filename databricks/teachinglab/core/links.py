"""The students' page links: /g/<token>, where the token is an HMAC of the course and the group's
name under the lab's secret. Pure. Nothing is stored per group: a new secret invalidates every
link at once, a token reveals nothing about the group or the secret, and a token made for one
course opens nothing in another, even where courses share STATUS_PAGE_SECRET."""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Iterable


def group_token(secret: str, course: str, group: str) -> str:
    message = b"group:" + course.encode("utf-8") + b"\0" + group.encode("utf-8")
    mac = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode("ascii")  # 144 bits, 24 characters, no padding


def group_of_token(secret: str, course: str, token: str, groups: Iterable[str]) -> str | None:
    """The group of this course the token was made for, or None (a forged token, one made under
    an old secret or for another course)."""
    found = None
    for group in groups:
        if hmac.compare_digest(group_token(secret, course, group), token):
            found = group
    return found


def group_url(base: str, secret: str, course: str, group: str) -> str:
    return f"{base.rstrip('/')}/g/{group_token(secret, course, group)}"
