"""`python main.py [SOURCE] [options]` is `netexplorer [SOURCE] [options]`."""

import sys

from netexplorer.cli import main

if __name__ == "__main__":
    sys.exit(main())
