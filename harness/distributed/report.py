"""Load nodes in the record: each node's share of a point, its CPU use and its clock.

Pure data (no Ray, no threads): :func:`merge_reports` folds the per-turn reports of
:meth:`~harness.distributed.host.RayHost.report` into ``server_stats["load_nodes"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def merge_reports(turns: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One entry per node over a point's turns: counts summed, CPU averaged per turn,
    every turn's offset kept (a node whose uncertainty exceeded a tenth of a window in
    any turn is flagged ``offset_suspect``)."""
    nodes: dict[str, dict[str, Any]] = {}
    for turn in turns:
        for report in turn:
            node = nodes.setdefault(
                report["node_id"],
                {
                    "node": report["node"],
                    "node_id": report["node_id"],
                    "address": report["address"],
                    "senders": report["senders"],
                    "turns": 0,
                    "sent": 0,
                    "ok": 0,
                    "errors": 0,
                    "timeouts": 0,
                    "client_cpu_pct": [],
                    "offsets_ns": [],
                    "offset_uncertainties_ns": [],
                    "wall_offsets_ns": [],
                    "offset_suspect": False,
                },
            )
            node["turns"] += 1
            for key in ("sent", "ok", "errors", "timeouts"):
                node[key] += report[key]
            if report["client_cpu_pct"] is not None:
                node["client_cpu_pct"].append(report["client_cpu_pct"])
            node["offsets_ns"].append(report["offset_ns"])
            node["offset_uncertainties_ns"].append(report["offset_uncertainty_ns"])
            node["wall_offsets_ns"].append(report["wall_offset_ns"])
            node["offset_suspect"] |= report["offset_suspect"]
    for node in nodes.values():
        cpu = node["client_cpu_pct"]
        node["client_cpu_pct"] = float(np.mean(cpu)) if cpu else None
    return sorted(nodes.values(), key=lambda node: node["node"])
