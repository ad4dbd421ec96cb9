"""``python -m histoquant``: the command line (:func:`histoquant.cli.main`)."""

import sys

from .cli import main

sys.exit(main())
