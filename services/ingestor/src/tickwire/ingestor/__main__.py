"""`tickwire-ingestor`: settings from the environment, then serve until SIGTERM."""

from tickwire.core.service import serve
from tickwire.ingestor.app import build_app
from tickwire.ingestor.settings import IngestorSettings


def main() -> None:
    serve("tickwire-ingestor", IngestorSettings, build_app)


if __name__ == "__main__":
    main()
