"""The project's exception types: pure Python, importable without the C core.

C error codes become CoreError subclasses in bridge_emu.core.errors, which
fills in the code's stable name and its sentence."""
from __future__ import annotations


class BridgeEmuError(Exception):
    """Base of every error bridge-emu raises on purpose."""


class CoreError(BridgeEmuError):
    """A C core call failed. `code` is the be_err_t value, `name` its identifier
    ("BE_ERR_IMG_HASH"), `text` its sentence, `where` what was being done."""

    def __init__(self, code: int, name: str, text: str, where: str = ""):
        self.code = code
        self.name = name
        self.text = text
        self.where = where
        msg = f"{name}: {text}"
        if where:
            msg = f"{where}: {msg}"
        super().__init__(msg)


class PowerCut(CoreError):
    """Power was cut during a flash operation; the device must be rebooted."""


class FlashError(CoreError):
    """Misaligned, out-of-range or otherwise impossible flash access, or bad geometry."""


class StateError(CoreError):
    """The device's state does not allow the operation (or its stored state is inconsistent)."""


class ImageError(CoreError):
    """An image failed validation (format, hash, signature, key, security counter, version)."""


class NoBootableImage(CoreError):
    """No image can run: the device stays in its bootloader."""


class ImageFormatError(BridgeEmuError):
    """An MCUboot/imgtool image (or a key or version for one) is malformed, seen from Python.

    `reason`, when set, is the be_err_t name the C validator gives for the same
    defect (e.g. "BE_ERR_IMG_TLV_TRUNCATED").
    """

    def __init__(self, message: str, reason: str | None = None):
        self.reason = reason
        super().__init__(message)
