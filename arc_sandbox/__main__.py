"""``python -m arc_sandbox``: the same as the ``arc-sandbox`` command."""
import sys

from arc_sandbox.cli import main

sys.exit(main())
