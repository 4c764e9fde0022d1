"""``python -m assistant`` is ``qwen-assistant``."""

import sys

from .cli import main

sys.exit(main())
