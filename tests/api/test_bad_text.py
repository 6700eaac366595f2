"""Text PostgreSQL cannot store (a NUL character) is a 422 problem, never a database error."""

from __future__ import annotations

from schemathesis.python import asgi

from fxcrm.api.errors import PROBLEM_JSON
from fxcrm.seed import DEMO_BRAND
from tests.api.schema_app import InProcessApi
from tests.db import backends


def test_nul_in_the_query_or_path_is_a_422(inprocess_api: InProcessApi) -> None:
    admin = {"Authorization": f"Bearer {inprocess_api.tokens['admin']}"}
    with asgi.get_client(inprocess_api.app) as http:
        for url in (
            "/backoffice/alerts?server_id=%00",
            "/backoffice/ledger/accounts?code_prefix=a%00b",
            "/backoffice/traders/%00",
        ):
            answer = http.get(url, headers=admin)
            assert answer.status_code == 422, (url, answer.text)
            assert answer.headers["content-type"] == PROBLEM_JSON


def test_nul_in_a_body_is_a_422_where_the_database_refuses_it(
    inprocess_api: InProcessApi,
) -> None:
    with asgi.get_client(inprocess_api.app) as http:
        answer = http.post(
            f"/portal/{DEMO_BRAND}/referral-clicks",
            json={"code": "MASTER\x00IB", "visitor_id": "v" * 32},
        )
    # SQLite stores a NUL (the code is then unknown); PostgreSQL refuses it.
    expected = {422} if "postgresql" in backends() else {404, 422}
    assert answer.status_code in expected, answer.text
