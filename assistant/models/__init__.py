"""Model files: the catalog, fetching, the models directory."""

from .catalog import CATALOG, ROLES, ModelSpec, lookup
from .fetch import Fetcher, Unreachable
from .store import ModelStore, resolve_model

__all__ = [
    "CATALOG",
    "ROLES",
    "Fetcher",
    "ModelSpec",
    "ModelStore",
    "Unreachable",
    "lookup",
    "resolve_model",
]
