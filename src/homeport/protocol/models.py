"""`/v1/models` wire types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = ["Model", "ModelList"]


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]
