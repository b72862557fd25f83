"""``python -m segloop.cli``: the same as the ``segloop`` command."""

import sys

from segloop.cli import main

sys.exit(main())
