"""Sanctions list loaders (OFAC CSV/XML, UN consolidated XML) into screening ListEntity models."""

from fxcrm.adapters.sanctions.loader import LoadedLists, load_lists, load_path

__all__ = ["LoadedLists", "load_lists", "load_path"]
