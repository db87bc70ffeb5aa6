"""Thin wrapper: `python studies/case1_4.py --help` (also `quadlab case1_4 --help`); the study lives in
quadlab/studies/case1_4.py."""

import sys

# through the command's one error path: a bad argument is one line and exit status 2, not a traceback
from quadlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["case1_4", *sys.argv[1:]]))
