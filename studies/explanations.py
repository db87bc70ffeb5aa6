"""Thin wrapper: `python studies/explanations.py --help` (also `quadlab explanations --help`); the study lives in
quadlab/studies/explanations.py."""

import sys

# through the command's one error path: a bad argument is one line and exit status 2, not a traceback
from quadlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["explanations", *sys.argv[1:]]))
