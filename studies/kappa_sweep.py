"""Thin wrapper: `python studies/kappa_sweep.py --help` (also `quadlab kappa-sweep --help`); the study lives in
quadlab/studies/kappa_sweep.py."""

import sys

# through the command's one error path: a bad argument is one line and exit status 2, not a traceback
from quadlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["kappa-sweep", *sys.argv[1:]]))
