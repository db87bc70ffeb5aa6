"""Thin wrapper: `python studies/kappa_sweep.py --help` (also `quadlab kappa-sweep --help`); the study lives in
quadlab/studies/kappa_sweep.py."""

import sys

from quadlab.studies.kappa_sweep import main

if __name__ == "__main__":
    sys.exit(main())
