"""A deployment the harness did not start: its serving block is read, not assumed.

A remote Triton or Thrift server already has its batching and instances. The scenario's
``serving`` block then either agrees with what the server reports (every field the
scenario sets), is ``as_deployed`` (taken from the server), or is an error that names
both values, so that no table claims a configuration it did not measure.
"""

from __future__ import annotations

from typing import Any

from harness.errors import InputError
from harness.scenario import Scenario

#: The serving fields a deployment can report, in the scenario's names.
FIELDS = ("instances", "batching_timeout_ms", "max_batch")


def check_serving(scenario: Scenario, deployed: dict[str, Any], where: str) -> None:
    """Raise :class:`InputError` if a field the scenario sets differs from ``deployed``.

    ``deployed`` maps :data:`FIELDS` to the server's values (``None``: not reported, e.g.
    ``batching_timeout_ms`` of a model without dynamic batching).
    """
    serving = scenario.serving
    if serving.as_deployed:
        return
    for name in FIELDS:
        if name not in serving.model_fields_set or deployed.get(name) is None:
            continue
        wanted, actual = getattr(serving, name), deployed[name]
        if float(wanted) != float(actual):
            raise InputError(
                f"serving.{name}: the scenario says {wanted:g} but {where} is deployed with "
                f"{actual:g} (change the scenario, or write serving: as_deployed)"
            )
