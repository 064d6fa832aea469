"""oncall: `python app.py [serve|check-config|migrate]` (see oncall.cli)."""

import sys

from oncall.cli import main

if __name__ == "__main__":
    sys.exit(main())
