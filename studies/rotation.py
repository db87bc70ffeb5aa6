"""Thin wrapper: `python studies/rotation.py --help` (also `quadlab rotation --help`); the study lives in
quadlab/studies/rotation.py."""

import sys

from quadlab.studies.rotation import main

if __name__ == "__main__":
    sys.exit(main())
