"""bridge-emu: emulated GB smart-metering Alt HAN bridges taking firmware over the air."""

__version__ = "0.1.0"
