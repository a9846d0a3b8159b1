"""``python -m gateway``: the same command line as ``deepcall-gateway``."""

import sys

from gateway.server.cli import main

sys.exit(main())
