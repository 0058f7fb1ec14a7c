import sys

from mfdkit.cli import main

sys.exit(main())
