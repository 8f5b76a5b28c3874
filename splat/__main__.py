"""`python -m splat ...`: the `splat` command."""

import sys

from splat.cli import main

sys.exit(main())
