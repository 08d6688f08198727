import sys

from bridge_emu.cli import main

sys.exit(main())
