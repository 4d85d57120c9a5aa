"""``python -m dynatree_lib <command>``: the command line (:mod:`dynatree_lib.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
