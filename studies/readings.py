"""Thin wrapper: `python studies/readings.py --help` (also `quadlab readings --help`); the study lives in
quadlab/studies/readings.py."""

import sys

from quadlab.studies.readings import main

if __name__ == "__main__":
    sys.exit(main())
