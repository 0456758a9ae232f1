import sys

from tooling.cli import entry_point

sys.exit(entry_point())
