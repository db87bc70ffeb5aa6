"""Regenerate every theory figure into paper_figs/out/: `python paper_figs/make_all.py [--quick]`
(the same as `quadlab figures`)."""

import sys

from quadlab.studies.figures import main

if __name__ == "__main__":
    sys.exit(main())
