import sys

from tests.helm_standin.cli import main

sys.exit(main(sys.argv[1:]))
