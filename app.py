"""oncall: `python app.py [serve|init|check-config|migrate|new-token]` (see oncall.cli)."""

import sys

from oncall.cli import main

if __name__ == "__main__":
    sys.exit(main())
