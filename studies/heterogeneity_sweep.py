"""Thin wrapper: `python studies/heterogeneity_sweep.py --help` (also `quadlab heterogeneity-sweep --help`); the
study lives in quadlab/studies/heterogeneity_sweep.py."""

import sys

from quadlab.studies.heterogeneity_sweep import main

if __name__ == "__main__":
    sys.exit(main())
