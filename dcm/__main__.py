import sys

from dcm.cli import main

sys.exit(main())
