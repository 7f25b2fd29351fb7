"""URLs as they may be shown. Pure.

A URL's userinfo (user:password@) is never printed, however the URL fails to parse: an unencoded
'#', '?' or '@' in a password makes urllib split it elsewhere (postgresql://lab:Sup3r#Secr3t@db
puts 'Secr3t@db' in the fragment), so this does not rely on urllib's parse."""
from __future__ import annotations


def shown_url(url: str) -> str:
    """The URL with everything between its scheme and its last '@' replaced by ***."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***" if "@" in url else url
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}://{rest}"


def userinfo(url: str | None) -> list[str]:
    """The secrets in a URL's userinfo, for the log's redaction: the whole of it and its password
    part (after the first ':'), however it parses."""
    if not url or "://" not in url:
        return []
    rest = url.partition("://")[2]
    if "@" not in rest:
        return []
    info = rest.rsplit("@", 1)[0]
    password = info.partition(":")[2]
    return [s for s in (info, password) if s]
