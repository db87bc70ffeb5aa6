"""Thin wrapper: `python studies/rotation.py --help` (also `quadlab rotation --help`); the study lives in
quadlab/studies/rotation.py."""

import sys

# through the command's one error path: a bad argument is one line and exit status 2, not a traceback
from quadlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["rotation", *sys.argv[1:]]))
