"""Thin wrapper: `python studies/heterogeneity_sweep.py --help` (also `quadlab heterogeneity-sweep --help`); the
study lives in quadlab/studies/heterogeneity_sweep.py."""

import sys

# through the command's one error path: a bad argument is one line and exit status 2, not a traceback
from quadlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["heterogeneity-sweep", *sys.argv[1:]]))
