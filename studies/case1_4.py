"""Thin wrapper: `python studies/case1_4.py --help` (also `quadlab case1-4 --help`); the study lives in
quadlab/studies/case1_4.py."""

import sys

from quadlab.studies.case1_4 import main

if __name__ == "__main__":
    sys.exit(main())
