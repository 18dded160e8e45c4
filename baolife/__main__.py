"""``python -m baolife`` is the ``baolife`` command."""

import sys

from .cli import main

sys.exit(main())
