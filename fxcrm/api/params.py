"""Bounded integer parameters shared by every route.

The database stores ids, sequence numbers and platform logins as signed 64-bit integers: a larger
number from a client must be a 422, never an OverflowError in the driver. Every integer a route
takes from the path or the query is one of these types (tests/api/test_bad_numbers.py checks it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from fxcrm.domain.bounds import MAX_INT64

# Skipping rows: zero or more. A cursor (`after`, `after_seq`): the last id or sequence seen.
Offset = Annotated[int, Query(ge=0, le=MAX_INT64, description="rows to skip")]
Cursor = Annotated[
    int, Query(ge=0, le=MAX_INT64, description="return rows after this id or sequence number")
]
# A trading account's number on its platform server.
Login = Annotated[int, Path(ge=1, le=MAX_INT64, description="the account's login on the server")]
