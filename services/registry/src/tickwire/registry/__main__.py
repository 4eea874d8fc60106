"""`tickwire-registry`: settings from the environment, then serve until SIGTERM."""

from tickwire.core.service import serve
from tickwire.registry.app import build_app
from tickwire.registry.settings import RegistrySettings


def main() -> None:
    serve("tickwire-registry", RegistrySettings, build_app)


if __name__ == "__main__":
    main()
