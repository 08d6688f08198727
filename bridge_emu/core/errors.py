"""C return codes to the project's exception types (bridge_emu.errors)."""
from __future__ import annotations

from bridge_emu.core._ffi import ffi, lib
from bridge_emu.errors import CoreError, FlashError, ImageError, NoBootableImage, PowerCut, StateError

OTA_CODES = range(lib.BE_ERR_OTA_MAGIC - 19, lib.BE_ERR_OTA_MAGIC + 1)     # the OTA block, -59..-40
IMAGE_CODES = range(lib.BE_ERR_IMG_COUNTER, lib.BE_ERR_IMG_MAGIC + 1)     # -38..-20
STATE_CODES = range(lib.BE_ERR_IMG_MAGIC + 1, lib.BE_ERR_STATE + 1)       # -19..-10


def error_name(code: int) -> str:
    return ffi.string(lib.be_err_name(code)).decode()


def error_for(code: int, where: str = "") -> CoreError:
    if code == lib.BE_ERR_POWER_CUT:
        cls = PowerCut
    elif code == lib.BE_ERR_NO_IMAGE:
        cls = NoBootableImage
    elif code in IMAGE_CODES or code in OTA_CODES:
        cls = ImageError
    elif code in STATE_CODES:
        cls = StateError
    else:
        cls = FlashError
    return cls(code, error_name(code), ffi.string(lib.be_err_text(code)).decode(), where)


def check(rc: int, where: str = "") -> int:
    """Return rc if it is not an error, else raise the matching CoreError."""
    if rc < 0:
        raise error_for(rc, where)
    return rc
