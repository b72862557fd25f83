"""``python -m segloop``: the command line, as ``segloop``."""

import sys

from segloop.cli import main

sys.exit(main())
