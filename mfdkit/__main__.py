from mfdkit.cli import main
import sys
sys.exit(main())
