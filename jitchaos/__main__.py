"""``python -m jitchaos`` runs the command line."""

import sys

from jitchaos._cli import main

sys.exit(main())
