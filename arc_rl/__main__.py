"""``python -m arc_rl``: the same as the ``arc-rl`` command."""
import sys

from arc_rl.cli import main

sys.exit(main())
