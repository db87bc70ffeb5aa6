"""Thin wrapper: `python studies/stored_spectra.py --help` (also `quadlab stored-spectra --help`); the study lives in
quadlab/studies/stored_spectra.py."""

import sys

from quadlab.studies.stored_spectra import main

if __name__ == "__main__":
    sys.exit(main())
