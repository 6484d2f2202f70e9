import os
import sys

if os.environ.get("DCM_STAGE_SERVER"):  # a warm server runs the command (dcm/stage_server.py)
    from dcm.stage_server import ENV, relay

    sys.exit(relay(os.environ[ENV], sys.argv[1:]))

from dcm.cli import main

sys.exit(main())
