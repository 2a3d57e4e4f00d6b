"""Running the event store under uvicorn, one worker or several: ``metricstream serve``.

The listening socket is bound here, before any worker starts, so the
address printed is the one clients reach (port 0 picks a free port), and
every worker accepts on that one socket. With several workers, uvicorn's
supervisor starts them (and starts a worker again if one dies), each takes
its own slot and archive file, and ``/metrics`` adds up every worker's
figures through prometheus_client's multiprocess directory.

SIGTERM and Ctrl-C stop it gracefully: no new connections, requests in
flight finish (within `GRACE_SECONDS`), then each worker flushes what it
acknowledged and closes.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import ipaddress
import os
import shutil
import signal
import socket
from pathlib import Path
from typing import Any, TextIO

from starlette.applications import Starlette

from metricstream.server._app import create_app
from metricstream.server._config import ServerConfig
from metricstream.server._spread import clear_table

__all__ = ["COLLECTOR_THRESHOLDS", "GRACE_SECONDS", "bind", "serve", "worker_app"]

GRACE_SECONDS = 30
"""How long requests in flight may take to finish once a stop is asked for."""

COLLECTOR_THRESHOLDS = (20_000, 50, 100)
"""The garbage collector's thresholds in a worker (Python's own: 700, 10, 10; 2000 from 3.13)."""


def worker_app(archive_dir: Path, **options: Any) -> Starlette:
    """`create_app` in a worker process of `serve`'s own, its garbage collector tuned.

    A request of 1,000 events allocates tens of thousands of objects that
    reference counting frees when it ends, and Python's default thresholds
    walk the young ones every 700 allocations (2,000 from Python 3.13) and,
    every 100 such walks, every object the process holds. So a worker first
    moves what it holds at start (modules, the application) out of the
    collector's sight (``gc.freeze``), then collects less often
    (`COLLECTOR_THRESHOLDS`): 2.8 µs of CPU per event stored became 2.6 in
    ``bench_server.py``.
    Applications embedded elsewhere (`create_app`) leave the collector
    alone: the process is not theirs.
    """
    app = create_app(archive_dir, **options)
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host` and `port` (0: a free port).

    Raises:
        OSError: If the address cannot be bound.
    """
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(config: ServerConfig, *, host: str, port: int, workers: int, out: TextIO) -> int:
    """Serve until stopped; return the exit status.

    Args:
        config: The options.
        host: The address to listen on (loopback unless told otherwise).
        port: The port (0: a free one).
        workers: How many worker processes.
        out: Where the listening address is printed.

    Raises:
        OSError: If the address cannot be bound or the archive directory written.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config.state_dir.mkdir(parents=True, exist_ok=True)
    if workers > 1:
        clear_table(config.state_dir)
        config = config.replace(spread_connections=True)
    sock = bind(host, port)
    server_config = _uvicorn_config(config, workers)
    out.write(
        f"metricstream serve: listening on {_url(sock)} "
        f"(archive {config.archive_dir}, {workers} worker{'s' if workers > 1 else ''}, "
        f"token {'required' if config.token else 'not set'})\n"
    )
    out.flush()
    # uvicorn handles SIGTERM and SIGINT while it serves (a graceful stop), then
    # raises the signal again for the handlers found before: these make that
    # second delivery a no-op, so a graceful stop exits with status 0.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _stopped)
    try:
        if workers == 1:
            uvicorn.Server(server_config).run(sockets=[sock])
        else:
            metrics = config.state_dir / "prometheus"
            shutil.rmtree(metrics, ignore_errors=True)
            metrics.mkdir(parents=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
            Multiprocess(server_config, sockets=[sock]).run()
    finally:
        sock.close()
    out.write("metricstream serve: stopped\n")
    out.flush()
    return 0


def _uvicorn_config(config: ServerConfig, workers: int) -> Any:
    """The settings of uvicorn: each worker makes its application with `worker_app`."""
    import uvicorn

    from metricstream.server._protocol import CountedHTTPProtocol

    options = {
        item.name: getattr(config, item.name)
        for item in dataclasses.fields(config)
        if item.name != "archive_dir"
    }
    return uvicorn.Config(
        functools.partial(worker_app, config.archive_dir, **options),
        factory=True,
        http=CountedHTTPProtocol if config.spread_connections else "auto",
        workers=workers,
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=GRACE_SECONDS,
        server_header=False,
    )


def _stopped(number: int, frame: object) -> None:
    """The stop uvicorn already carried out is signalled again: nothing is left to do."""
    del number, frame
