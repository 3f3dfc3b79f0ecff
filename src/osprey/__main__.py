"""``python -m osprey ...`` is the ``osprey`` command (so ``accelerate launch -m osprey label ...`` works)."""

import sys

from osprey.cli import main

sys.exit(main())
