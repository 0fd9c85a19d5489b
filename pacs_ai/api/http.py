"""The HTTP server: uvicorn in a background thread, started and stopped by ``Server``."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 30.0


class HttpServer:
    """uvicorn serving one app on ``host:port`` (port 0: an ephemeral port, see :attr:`port`).

    Forwarding headers are handled by the app itself (:mod:`pacs_ai.api.forwarded`), so that it
    knows both the proxy's address (for trust) and the client's (for the audit trail).
    """

    def __init__(self, app: FastAPI, host: str, port: int, *, log_level: str = "warning") -> None:
        self.app = app
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level.lower(),
            access_log=False,
            proxy_headers=False,
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=10,
        )
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a thread; return once the socket is bound (RuntimeError if it is not)."""
        self.thread = threading.Thread(target=self.server.run, name="pacs-ai-http", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start (is the port taken?)")
            time.sleep(0.01)
        log.info("HTTP listening on port %d", self.port)

    @property
    def port(self) -> int:
        """The bound port."""
        sockets = [s for server in self.server.servers for s in server.sockets]
        return int(sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to the graceful timeout), join."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join()
            self.thread = None
