"""Joining a Ray cluster: ``auto`` (the one this machine belongs to), ``local`` (a cluster of this machine alone,
started here) or an address (``HOST:PORT`` of its head, or ``ray://HOST:PORT`` for Ray Client); one sentence, within
a timeout, where none answers. Ray's usage statistics stay off unless the environment turns them on."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from ..base.extras import require

TIMEOUT = 30.0  # seconds a cluster has to answer


def connect(address: str, timeout: float = TIMEOUT) -> Any:
    """Ray, connected as ``address`` says; ``ValueError`` in a sentence where it cannot be."""
    require("ray", f"--ray {address}")
    import ray

    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no report to the outside unless asked
    if address == "local":
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
        return ray
    if address != "auto":
        _answers(address, timeout)
    failure: list[BaseException] = []

    def join() -> None:
        try:
            ray.init(address=address, log_to_driver=False)
        except BaseException as err:  # noqa: BLE001  (said below, in the caller's thread)
            failure.append(err)

    worker = threading.Thread(target=join, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ValueError(f"--ray {address}: the cluster did not answer within {timeout:.0f} s")
    if failure:
        reason = str(failure[0]).splitlines()[0][:160] if str(failure[0]) else type(failure[0]).__name__
        hint = (
            " (ray start --head starts one here; --ray local runs on this machine alone)" if address == "auto" else ""
        )
        raise ValueError(f"--ray {address}: cannot join the cluster: {reason}{hint}")
    return ray


def _answers(address: str, timeout: float) -> None:
    """A head's port that nothing answers on is said at once, not after Ray's own minutes of retries."""
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray {address}: give auto, local, HOST:PORT of the cluster's head, or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=min(timeout, 10.0)):
            pass
    except OSError as err:
        raise ValueError(f"--ray {address}: nothing answers there ({err.strerror or err})") from None


def node_label() -> str:
    """Where a task runs: its machine's name and the start of its Ray node's id (two nodes may share a machine)."""
    import ray

    return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:6]}"
