"""Entry point of ``python -m digitize``."""

from __future__ import annotations

import sys

from digitize.presentation.cli import main

sys.exit(main())
