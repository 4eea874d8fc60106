"""`tickwire-edge`: settings from the environment, then serve until SIGTERM (alone, or
as the parent of TICKWIRE_EDGE_WORKERS processes sharing the port)."""

from tickwire.core.logs import configure_logging
from tickwire.core.service import serve
from tickwire.core.settings import load_settings
from tickwire.edge.app import build_app
from tickwire.edge.settings import EdgeSettings
from tickwire.edge.workers import Supervisor, worker_count, worker_index

PROGRAM = "tickwire-edge"


def _listen(settings: EdgeSettings) -> dict:
    # aiohttp has no request-head timeout, but its keep-alive timer runs from the moment
    # a connection opens and closes it while no whole request has arrived: the same bound.
    return {"backlog": settings.listen_backlog, "reuse_port": worker_index() is not None,
            "keepalive_timeout": settings.request_head_timeout_seconds}


def main() -> None:
    settings = load_settings(EdgeSettings, PROGRAM)
    count = worker_count(settings.workers)
    if count > 1 and worker_index() is None:
        configure_logging(PROGRAM, settings.log_level, settings.log_format)
        raise SystemExit(Supervisor(settings.edge_id, count).run())
    serve(PROGRAM, EdgeSettings, build_app, _listen)


if __name__ == "__main__":
    main()
