"""Request parameters: query merged with a JSON body, looked up case-insensitively."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from fxcrm.adapters.simulators.mt5.protocol import Mt5Error


def _norm(key: str) -> str:
    """`pass_main`, `PassMain` and `passmain` name the same parameter."""
    return key.replace("_", "").lower()


class Params:
    """Query parameters merged with a JSON body (the body wins), looked up case-insensitively."""

    def __init__(self, query: Mapping[str, str], body: object) -> None:
        self.body: dict[str, Any] = body if isinstance(body, dict) else {}
        self.body_list: list[Any] | None = body if isinstance(body, list) else None
        self._values: dict[str, Any] = {_norm(k): v for k, v in query.items()}
        self._values.update({_norm(k): v for k, v in self.body.items()})
        self._body_values = {_norm(k): v for k, v in self.body.items()}

    def has(self, name: str) -> bool:
        return _norm(name) in self._values

    def text(self, name: str) -> str | None:
        value = self._values.get(_norm(name))
        return None if value is None else str(value)

    def body_text(self, name: str) -> str | None:
        value = self._body_values.get(_norm(name))
        return None if value is None else str(value)

    def integer(self, name: str) -> int | None:
        value = self._values.get(_norm(name))
        if value is None or value == "":
            return None
        try:
            return int(str(value))
        except ValueError as exc:
            raise Mt5Error(3, f"{name} is not an integer") from exc

    def required_int(self, name: str) -> int:
        value = self.integer(name)
        if value is None:
            raise Mt5Error(3, f"{name} is required")
        return value

    def decimal(self, name: str) -> Decimal | None:
        value = self._values.get(_norm(name))
        if value is None or value == "":
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation as exc:
            raise Mt5Error(3, f"{name} is not a number") from exc

    def int_list(self, name: str) -> list[int] | None:
        """`login=1,2,3` in the query, or an array (of numbers or strings) in a POST body."""
        value = self._values.get(_norm(name))
        if value is None:
            return None
        items = value if isinstance(value, list) else str(value).split(",")
        try:
            return [int(str(item).strip()) for item in items if str(item).strip()]
        except ValueError as exc:
            raise Mt5Error(3, f"{name} is not a list of integers") from exc
