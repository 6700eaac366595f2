"""Saving a simulator's JSON state when fills come by the hundred a second.

Every simulator keeps its whole state in one JSON file and rewrites it in full on `save()`. An
account change is rare and saved at once; the market engine's fills are not: rewriting a file that
grows with every deal on every fill makes each fill cost O(deals so far) and a busy demo market
CPU-bound (this capped the sync-lag benchmark at ~40 fills a second). Fills save at most every
`FILL_SAVE_SECONDS`, and the host saves once more on shutdown, so a restart loses at most that much
of the simulated market (never an account or a balance operation made through the API).
"""

from __future__ import annotations

import time

FILL_SAVE_SECONDS = 5.0


class ThrottledSave:
    """Mixin for a simulator state with a `save()`: `save_now_and_then()` after each fill."""

    _last_fill_save: float = 0.0

    def save(self) -> None:  # pragma: no cover - every simulator state defines its own
        raise NotImplementedError

    def save_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._last_fill_save >= FILL_SAVE_SECONDS:
            self._last_fill_save = now
            self.save()
