import sys

from tickwire.client.cli import main

sys.exit(main())
