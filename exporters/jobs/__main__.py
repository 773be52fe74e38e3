"""`python -m exporters.jobs`: same as `redline exporter jobs`."""

import sys

from exporters.jobs import main

sys.exit(main(sys.argv[1:]))
