"""`tickwire-edge`: settings from the environment, then serve until SIGTERM."""

from tickwire.core.service import serve
from tickwire.edge.app import build_app
from tickwire.edge.settings import EdgeSettings


def main() -> None:
    serve("tickwire-edge", EdgeSettings, build_app)


if __name__ == "__main__":
    main()
