"""`python -m cutover`: the command line lives in `cutover.cli.main`."""

import sys

from cutover.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
