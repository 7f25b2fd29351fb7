"""Spreadsheet cells that cannot run: every CSV the product writes goes through safe_cell. Pure.

A cell starting with = + - @, a tab or a carriage return is a formula to Excel and LibreOffice
(=HYPERLINK(...) leaks data when clicked, @SUM runs): such text gets a leading quote, which a
spreadsheet shows and never runs (OWASP, "CSV Injection")."""
from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def safe_row(values) -> list[str]:
    return [safe_cell(v) for v in values]
