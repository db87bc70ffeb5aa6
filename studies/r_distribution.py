"""Thin wrapper: `python studies/r_distribution.py --help` (also `quadlab r-distribution --help`); the study lives in
quadlab/studies/r_distribution.py."""

import sys

from quadlab.studies.r_distribution import main

if __name__ == "__main__":
    sys.exit(main())
