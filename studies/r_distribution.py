"""Thin wrapper: `python studies/r_distribution.py --help` (also `quadlab r-distribution --help`); the study lives in
quadlab/studies/r_distribution.py."""

import sys

# through the command's one error path: a bad argument is one line and exit status 2, not a traceback
from quadlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["r-distribution", *sys.argv[1:]]))
