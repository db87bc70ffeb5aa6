"""``python -m quadlab``: the ``quadlab`` command (see :mod:`quadlab.cli`)."""

import sys

from quadlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
