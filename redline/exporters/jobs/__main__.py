"""`python -m redline.exporters.jobs`: same as `redline exporter jobs`."""

import sys

from redline.exporters.jobs.cli import main

sys.exit(main(sys.argv[1:]))
