"""`load_lists`: read any mix of supported list files into one entity set with a version id."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from fxcrm.adapters.sanctions.common import list_version
from fxcrm.adapters.sanctions.ofac_csv import load_ofac_csv
from fxcrm.adapters.sanctions.ofac_xml import load_ofac_xml
from fxcrm.adapters.sanctions.un_xml import load_un_xml
from fxcrm.adapters.sanctions.xml_stream import root_tag
from fxcrm.domain.screening.model import ListEntity


class LoadedLists(NamedTuple):
    """Entities of all loaded lists; unpacks as `entities, version = load_lists(paths)`."""

    entities: list[ListEntity]
    version: str


def load_path(path: Path) -> list[ListEntity]:
    """Detect the format of one path and load it.

    A directory (or a path to its sdn.csv) is the OFAC CSV trio; XML is told apart by its
    document element, since both OFAC and the UN publish a "consolidated.xml".
    """
    if path.is_dir():
        return load_ofac_csv(path)
    if path.name.casefold() == "sdn.csv":
        return load_ofac_csv(path.parent)
    if path.suffix.casefold() == ".xml":
        root = root_tag(path)
        if root == "sdnList":
            return load_ofac_xml(path)
        if root == "CONSOLIDATED_LIST":
            return load_un_xml(path)
        raise ValueError(f"unsupported XML list {path} (document element {root!r})")
    raise ValueError(f"unsupported sanctions list path {path}")


def load_lists(paths: Sequence[Path | str]) -> LoadedLists:
    """Load and merge lists; the first occurrence of an entity id wins (same list twice)."""
    entities: dict[str, ListEntity] = {}
    for path in paths:
        for entity in load_path(Path(path)):
            entities.setdefault(entity.entity_id, entity)
    merged = list(entities.values())
    return LoadedLists(merged, list_version(merged))
