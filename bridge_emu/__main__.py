"""python -m bridge_emu: the command line (bridge_emu.cli)."""
import sys

from bridge_emu.cli import main

sys.exit(main())
