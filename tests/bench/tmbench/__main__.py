"""Entry point: `python3 -m tmbench` (run from tests/bench; tests/bench/run does it)."""

import sys

from .main import main

sys.exit(main())
