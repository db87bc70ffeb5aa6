"""Rebuild the stored GPT2/ResNet18 block spectra: `python studies/extract_spectra.py all [--quick] [--out DIR]`
(the same as `quadlab extract ...`; needs `pip install -e ".[extract]"`)."""

import sys

from quadlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
