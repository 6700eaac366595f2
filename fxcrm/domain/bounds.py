"""Bounds the storage sets on numbers: the database keeps ids, sequence numbers, platform logins
and money in minor units as signed 64-bit integers."""

from __future__ import annotations

MAX_INT64 = 2**63 - 1
