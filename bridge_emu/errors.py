"""The project's exception types. C error codes become these, with a message
that says what failed and where."""
from __future__ import annotations

from bridge_emu.native import ffi, lib


class BridgeEmuError(Exception):
    """Base of every error bridge-emu raises on purpose."""


class CoreError(BridgeEmuError):
    """A C core call failed. `code` is the be_err_t value, `name` its identifier."""

    def __init__(self, code: int, where: str = ""):
        self.code = code
        self.name = ffi.string(lib.be_err_name(code)).decode()
        self.text = ffi.string(lib.be_err_text(code)).decode()
        self.where = where
        msg = f"{self.name}: {self.text}"
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


def error_for(code: int, where: str = "") -> CoreError:
    if code == lib.BE_ERR_POWER_CUT:
        return PowerCut(code, where)
    if code == lib.BE_ERR_NO_IMAGE:
        return NoBootableImage(code, where)
    if lib.BE_ERR_IMG_MAGIC >= code >= lib.BE_ERR_CRYPTO:
        return ImageError(code, where)
    if lib.BE_ERR_OTA_MAGIC >= code >= lib.BE_ERR_OTA_MAGIC - 19:  # the OTA block, -40..-59
        return ImageError(code, where)
    if lib.BE_ERR_STATE >= code > lib.BE_ERR_IMG_MAGIC:
        return StateError(code, where)
    return FlashError(code, where)


def check(rc: int, where: str = "") -> int:
    """Return rc if it is not an error, else raise the matching CoreError."""
    if rc < 0:
        raise error_for(rc, where)
    return rc
