"""Thin wrapper: `python studies/blockwise_lrs.py --help` (also `quadlab blockwise-lrs --help`); the study lives in
quadlab/studies/blockwise_lrs.py."""

import sys

# through the command's one error path: a bad argument is one line and exit status 2, not a traceback
from quadlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["blockwise-lrs", *sys.argv[1:]]))
