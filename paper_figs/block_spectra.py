"""Thin wrapper: `python paper_figs/block_spectra.py --help` (also `quadlab block-spectra`)."""

import sys

from quadlab.studies.block_spectra import main

if __name__ == "__main__":
    sys.exit(main())
