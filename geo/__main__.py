"""``python -m geo`` runs the command-line interface."""

import sys

from geo.cli import main

sys.exit(main())
