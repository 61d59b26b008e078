"""What a model-calling family's service is built from: the collaborators `create_app` makes once
and hands to every family's factory (api/families.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..backends.upstream import UpstreamPool
from ..storage.db import Database
from ..storage.jobs import Jobs
from .inference.registry import ModelRegistry
from .platform.admission import Admitter
from .platform.usage import UsageRecorder
from .retrieval.stores import VectorStoreService

__all__ = ["Kit"]


@dataclass(frozen=True)
class Kit:
    registry: ModelRegistry
    db: Database
    vector_stores: VectorStoreService
    jobs: Jobs
    admitter: Admitter
    usage: UsageRecorder
    pools: dict[str, UpstreamPool]
    """The upstream deployments of models served by other servers, by model id."""
