"""``python -m homeport``."""

import sys

from homeport.cli import main

sys.exit(main())
