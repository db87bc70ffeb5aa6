"""Thin wrapper: `python studies/readings.py --help` (also `quadlab readings --help`); the study lives in
quadlab/studies/readings.py."""

import sys

# through the command's one error path: a bad argument is one line and exit status 2, not a traceback
from quadlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["readings", *sys.argv[1:]]))
