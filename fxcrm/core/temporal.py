"""The one way to build a Temporal client: pydantic data converter everywhere."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter

from fxcrm.core.config import Settings

# Custom search attributes (registered by `make dev` and the test fixtures).
TRADER_ID = SearchAttributeKey.for_keyword("TraderId")
BRAND = SearchAttributeKey.for_keyword("Brand")
STAGE = SearchAttributeKey.for_keyword("Stage")

SEARCH_ATTRIBUTES = {"TraderId": "Keyword", "Brand": "Keyword", "Stage": "Keyword"}


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """Registers fxcrm's search attributes (the dev runner passes them as CLI flags instead)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in SEARCH_ATTRIBUTES
            },
        )
    )
