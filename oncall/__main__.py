"""`python -m oncall [serve|check-config|migrate]`, the same as `python app.py`."""

import sys

from oncall.cli import main

sys.exit(main())
