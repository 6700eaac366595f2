"""Manager sessions, each bound to the TCP connection it logged in on (and to a cookie)."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

SESSION_COOKIE = "MT5WebAPI"
Connection = tuple[str, int]


@dataclass
class Mt5Session:
    cookie: str
    login: int
    srv_rand: bytes
    authenticated: bool = False
    last_seen: float = field(default_factory=time.monotonic)


class SessionTable:
    """Manager sessions keyed by the TCP connection (peer host, port) they were opened on."""

    def __init__(self) -> None:
        self._by_connection: dict[Connection, Mt5Session] = {}
        self._lock = threading.Lock()

    def start(self, connection: Connection, login: int, srv_rand: bytes) -> Mt5Session:
        session = Mt5Session(cookie=secrets.token_hex(16), login=login, srv_rand=srv_rand)
        with self._lock:
            self._by_connection[connection] = session
        return session

    def put(self, connection: Connection, session: Mt5Session) -> None:
        with self._lock:
            self._by_connection[connection] = session

    def get(self, connection: Connection) -> Mt5Session | None:
        with self._lock:
            return self._by_connection.get(connection)

    def end(self, connection: Connection) -> None:
        with self._lock:
            self._by_connection.pop(connection, None)

    def expire(self, idle_seconds: float) -> None:
        cutoff = time.monotonic() - idle_seconds
        with self._lock:
            for connection, session in list(self._by_connection.items()):
                if session.last_seen < cutoff:
                    del self._by_connection[connection]

    def drop_all(self) -> None:
        """Forget every session, as a restarted access server would."""
        with self._lock:
            self._by_connection.clear()

    def authenticated(self) -> list[Mt5Session]:
        with self._lock:
            return [s for s in self._by_connection.values() if s.authenticated]
