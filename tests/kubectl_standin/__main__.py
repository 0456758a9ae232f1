import sys

from tests.kubectl_standin.cli import main

sys.exit(main(sys.argv[1:]))
