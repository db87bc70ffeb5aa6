"""Thin wrapper: `python studies/blockwise_lrs.py --help` (also `quadlab blockwise-lrs --help`); the study lives in
quadlab/studies/blockwise_lrs.py."""

import sys

from quadlab.studies.blockwise_lrs import main

if __name__ == "__main__":
    sys.exit(main())
