"""A pipe node's configuration, with torchpipe's key names and clear errors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engines.pipe.backends import backend_class, backend_names


class PipeConfigError(ValueError):
    """A bad engine configuration; the message names the key."""


class NodeConfig(BaseModel):
    """One node: which backend, how many instances, how batches are formed."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    backend: str
    instance_num: int = Field(1, gt=0)
    #: How long (ms) a partial batch may wait for more requests. 0 = never wait.
    batching_timeout: float = Field(0.0, ge=0)
    max: int = Field(1, gt=0)
    min: int = Field(1, gt=0)
    #: How a partial batch decides to wait: see :mod:`engines.pipe.policies`.
    policy: Literal["adaptive", "torchpipe", "torchpipe-v0"] = "adaptive"
    #: ``thread``: instances are threads of this process (for backends that release the
    #: GIL); ``process``: each instance is a worker process (GIL-bound Python).
    kind: Literal["thread", "process"] = "thread"
    #: Free-form parameters handed to each backend instance's ``init``.
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("backend")
    @classmethod
    def _registered(cls, name: str) -> str:
        if backend_class(name) is None:
            raise ValueError(
                f"unknown backend {name!r}: not registered ({backend_names()}) and not an "
                "importable module:Class with a forward method"
            )
        return name

    @field_validator("min")
    @classmethod
    def _min_le_max(cls, value: int, info: Any) -> int:
        if value > info.data.get("max", value):
            raise ValueError("min must not exceed max")
        return value

    @classmethod
    def parse(cls, config: dict[str, Any]) -> NodeConfig:
        try:
            return cls.model_validate(config)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in first["loc"]) or "config"
            reason = first["msg"].removeprefix("Value error, ")
            raise PipeConfigError(f"pipe config: {key}: {reason}") from None
