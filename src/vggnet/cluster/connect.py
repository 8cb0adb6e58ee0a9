"""Joining a Ray cluster: ``auto`` (the one this machine belongs to, or ``RAY_ADDRESS``'s), ``local`` (a cluster of
this process alone, started here, whatever cluster the machine or ``RAY_ADDRESS`` points to) or an address
(``HOST:PORT`` of its head, or ``ray://HOST:PORT`` for Ray Client); one sentence, within a timeout, where none
answers. Ray's usage statistics stay off unless the environment turns them on, and Ray's own log goes to the
session's files, not the terminal, unless asked for."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

from ..base.extras import require

TIMEOUT = 30.0  # seconds a cluster has to answer
LOGS: str | None = None  # the log folder of the session this process started or joined


def connect(address: str, timeout: float = TIMEOUT, show_log: bool = False) -> Any:
    """Ray, connected as ``address`` says; ``ValueError`` in a sentence where it cannot be. Ray's own log (its
    workers' output, its warnings) reaches the terminal only with ``show_log``; else one line says where it is."""
    if address != "local":
        _token_for_this_machine(address)  # before Ray reads its settings from the environment, on import
    require("ray", f"--ray {address}")
    import ray

    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no report to the outside unless asked
    quiet = {"log_to_driver": show_log, "logging_level": logging.INFO if show_log else logging.ERROR}
    if address == "local":
        with _without("RAY_ADDRESS"):  # nor do the processes it starts see another cluster's address
            started = ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
        _say_where_the_log_is(started, show_log)
        return ray
    if address != "auto":
        _answers(address, timeout)
    failure: list[BaseException] = []
    joined: list[Any] = []

    def join() -> None:
        try:
            joined.append(ray.init(address=address, **quiet))
        except BaseException as err:  # noqa: BLE001  (said below, in the caller's thread)
            failure.append(err)

    worker = threading.Thread(target=join, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ValueError(f"--ray {address}: the cluster did not answer within {timeout:.0f} s")
    if failure:
        reason = str(failure[0]).splitlines()[0][:160] if str(failure[0]) else type(failure[0]).__name__
        hint = " (ray start --head starts one here; --ray local runs on this machine alone)" * (address == "auto")
        raise ValueError(f"--ray {address}: cannot join the cluster: {reason}{hint}")
    _say_where_the_log_is(joined[0] if joined else None, show_log)
    return ray


def _token_for_this_machine(address: str) -> None:
    """Ray sends its token (``~/.ray/auth_token``) to a cluster it finds on this machine itself, but not to one an
    address names, ``RAY_ADDRESS`` included, unless RAY_AUTH_MODE=token: where the named cluster asks for a token
    (its head says so at once) and is on this machine, it gets it here too, as a plain ``ray.init()`` would send it
    there; one elsewhere is a sentence saying how to send it, not Ray's minute of retries."""
    named = os.environ.get("RAY_ADDRESS", "") if address == "auto" else address
    if "RAY_AUTH_MODE" in os.environ or not named or "://" in named or not _asks_for_token(named):
        return
    token = os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(
        os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    )
    if not token or not _this_machine(named.rpartition(":")[0].strip("[]")):
        raise ValueError(
            f"--ray {address}: the cluster at {named} asks for Ray's token: set RAY_AUTH_MODE=token, with the token "
            "in RAY_AUTH_TOKEN or ~/.ray/auth_token"
        )
    os.environ["RAY_AUTH_MODE"] = "token"
    if "ray" in sys.modules:  # imported already: its settings read again, as Ray does when it turns tokens on
        with contextlib.suppress(ImportError, AttributeError):
            from ray._raylet import Config

            Config.initialize("")


def _asks_for_token(address: str) -> bool:
    """Whether the head at ``address`` refuses a call without Ray's token (False where it cannot tell)."""
    try:
        import grpc  # Ray's own dependency
    except ImportError:
        return False
    with grpc.insecure_channel(address) as channel:
        cluster_id = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId", bytes, bytes)
        try:
            cluster_id(b"", timeout=5)
        except grpc.RpcError as err:
            return err.code() == grpc.StatusCode.UNAUTHENTICATED
    return False


def _this_machine(host: str) -> bool:
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None)}
        own = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        return False
    return all(ipaddress.ip_address(ip).is_loopback or ip in own for ip in found)


@contextlib.contextmanager
def _without(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


def _say_where_the_log_is(context: Any, show_log: bool) -> None:
    global LOGS
    session = (getattr(context, "address_info", None) or {}).get("session_dir")
    LOGS = os.path.join(session, "logs") if session else None
    if not show_log and LOGS:
        print(f"Ray's own log: {LOGS} (--ray-log shows it here)", file=sys.stderr)


@contextlib.contextmanager
def core_log_to_files(show_log: bool = False) -> Iterator[None]:
    """While a job runs, what Ray's C++ core writes on this process's standard error (a warning per actor it
    starts, in Ray Data) goes to ``vggnet-driver.err`` among the session's logs, while Python's ``sys.stderr``
    (the job's progress and sentences) stays on the terminal; nothing changes with ``show_log`` or where this
    process did not start or join the cluster itself."""
    if show_log or LOGS is None or not os.path.isdir(LOGS):
        yield
        return
    sys.stderr.flush()
    saved, before = os.dup(2), sys.stderr
    try:
        with (
            open(saved, "w", buffering=1, encoding=before.encoding, errors="backslashreplace", closefd=False) as here,
            open(os.path.join(LOGS, "vggnet-driver.err"), "ab") as file,
        ):
            os.dup2(file.fileno(), 2)
            sys.stderr = here
            try:
                yield
            finally:
                here.flush()
                sys.stderr = before
                os.dup2(saved, 2)
    finally:
        os.close(saved)


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
