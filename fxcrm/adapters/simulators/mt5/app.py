"""The access server as an ASGI app: connection-bound sessions, the login, command dispatch."""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fxcrm.adapters.platforms.mt5 import challenge_answer, password_hash
from fxcrm.adapters.simulators.mt5.commands import HANDLERS, Ctx
from fxcrm.adapters.simulators.mt5.config import Mt5SimConfig, Mt5SimManager
from fxcrm.adapters.simulators.mt5.params import Params
from fxcrm.adapters.simulators.mt5.protocol import Mt5Error, retcode_string
from fxcrm.adapters.simulators.mt5.records import to_wire
from fxcrm.adapters.simulators.mt5.sessions import SESSION_COOKIE, Connection, Mt5Session
from fxcrm.adapters.simulators.mt5.state import Mt5SimState


async def _read_body(request: Request) -> object:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        pass
    # Some clients send form data; others send JSON labelled as form data (handled above).
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("utf-8", "replace")))
    raise Mt5Error(3, "body is not JSON")


def _reply(code: int, answer: Any = None, *, detail: str = "", **extra: Any) -> Response:
    payload: dict[str, Any] = {"retcode": retcode_string(code, detail), **to_wire(extra)}
    if answer is not None:
        payload["answer"] = to_wire(answer)
    return Response(json.dumps(payload, ensure_ascii=False), media_type="application/json")


def _forbidden(code: int = 8) -> Response:
    return Response(
        json.dumps({"retcode": retcode_string(code)}),
        status_code=403,
        media_type="application/json",
    )


class Mt5WebApi:
    """The access server: sessions, the challenge-response login, then command dispatch."""

    def __init__(self, state: Mt5SimState) -> None:
        self.state = state

    async def endpoint(self, request: Request) -> Response:
        command = request.path_params["command"].strip("/").lower()
        peer = request.client
        connection: Connection = (peer.host, peer.port) if peer else ("", 0)
        try:
            params = Params(request.query_params, await _read_body(request))
        except Mt5Error as exc:
            return _reply(exc.retcode)
        if command == "auth/start":
            return self._auth_start(request, connection, params)
        if command == "auth/answer":
            return self._auth_answer(request, connection, params)

        session = self._live_session(request, connection)
        if session is None:
            return _forbidden()
        if command == "quit":
            self.state.sessions.end(connection)
            return _reply(0)
        manager = self.state.manager(session.login)
        if manager is None:  # removed from the configuration since it logged in
            return _forbidden()
        handler = HANDLERS.get(command)
        if handler is None:
            return Response(json.dumps({"retcode": retcode_string(3)}), status_code=404)
        try:
            with self.state.lock:
                answer = handler(Ctx(self.state, manager, params))
        except Mt5Error as exc:
            return _reply(exc.retcode, detail=exc.detail)
        return _reply(0, answer)

    def _live_session(self, request: Request, connection: Connection) -> Mt5Session | None:
        """The authenticated session of this very connection, if the cookie (when sent) agrees."""
        sessions = self.state.sessions
        sessions.expire(self.state.config.session_idle_seconds)
        session = sessions.get(connection)
        if session is None or not session.authenticated:
            return None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is None and self.state.config.require_cookie:
            return None
        if cookie is not None and not hmac.compare_digest(cookie, session.cookie):
            return None
        session.last_seen = time.monotonic()
        return session

    def _auth_start(self, request: Request, connection: Connection, params: Params) -> Response:
        try:
            login = params.required_int("login")
        except Mt5Error as exc:
            return _reply(exc.retcode)
        if (params.text("type") or "manager").lower() != "manager":
            return _reply(3)
        self.state.sessions.expire(self.state.config.session_idle_seconds)
        # Unknown logins get a challenge too: the answer step refuses them, revealing nothing.
        srv_rand = secrets.token_bytes(16)
        session = self.state.sessions.start(connection, login, srv_rand)
        response = _reply(0, version_access=self.state.config.build, srv_rand=srv_rand.hex())
        response.set_cookie(
            SESSION_COOKIE,
            session.cookie,
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="strict",
        )
        return response

    def _auth_answer(self, request: Request, connection: Connection, params: Params) -> Response:
        sessions = self.state.sessions
        session = sessions.get(connection)
        if session is None or session.authenticated:
            return _forbidden()
        # A challenge is answered once, right or wrong.
        sessions.end(connection)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is not None and not hmac.compare_digest(cookie, session.cookie):
            return _forbidden()
        try:
            cli_rand = bytes.fromhex(params.text("cli_rand") or "")
        except ValueError:
            return _reply(3)
        if len(cli_rand) != 16:
            return _reply(3)
        manager = self.state.manager(session.login)
        if manager is None:
            return _forbidden(3006)
        pw_hash = password_hash(manager.password)
        expected = challenge_answer(pw_hash, session.srv_rand)
        if not hmac.compare_digest((params.text("srv_rand_answer") or "").lower(), expected):
            return _forbidden(3006)
        if not manager.webapi or not _ip_allowed(manager, connection[0]):
            return _forbidden(8)
        session.authenticated = True
        session.last_seen = time.monotonic()
        sessions.put(connection, session)
        if self.state.config.fake_cli_rand_answer:
            cli_answer = secrets.token_hex(16)
        else:
            cli_answer = challenge_answer(pw_hash, cli_rand)
        return _reply(0, cli_rand_answer=cli_answer, version_trade=self.state.config.build)


def _ip_allowed(manager: Mt5SimManager, host: str) -> bool:
    if not manager.allowed_ips:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in manager.allowed_ips)


def create_mt5_simulator(
    config: Mt5SimConfig | None = None, *, state: Mt5SimState | None = None
) -> Starlette:
    """The ASGI app. `app.state.mt5` is the `Mt5SimState` behind it (`app.state.mt5_api.state`
    may be swapped for a fresh one)."""
    state = state or Mt5SimState(config)
    api = Mt5WebApi(state)
    app = Starlette(routes=[Route("/api/{command:path}", api.endpoint, methods=["GET", "POST"])])
    app.state.mt5 = state
    app.state.mt5_api = api
    return app
