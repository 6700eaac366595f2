"""Masking of client PII for callers who need to recognise a client, not read their data."""

from __future__ import annotations


def mask_name(name: str) -> str:
    return name[:1] + "***" if name else ""


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
