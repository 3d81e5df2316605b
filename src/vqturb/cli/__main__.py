import sys

from vqturb.cli import main

sys.exit(main())
