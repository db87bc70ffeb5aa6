"""Thin wrapper: `python studies/stored_spectra.py --help` (also `quadlab stored-report --help`); the study lives in
quadlab/studies/stored_spectra.py."""

import sys

# through the command's one error path: a bad argument is one line and exit status 2, not a traceback
from quadlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["stored-report", *sys.argv[1:]]))
