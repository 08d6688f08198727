"""A bridge's update, step by step in virtual time, from its event log: the
timeline `run` and `demo` print per bridge and put in their JSON."""
from __future__ import annotations

ALERT_NAMES = {"0x8F72": "verified", "0x8F1C": "verification failed", "0x8F43": "running version changed",
               "0x8F1B": "refused at power-on", "0x00CA": "future-dated outcome"}


def _boot(e: dict) -> tuple[str, str]:
    actions = e.get("actions") or []
    step = ("rescue" if "rescued" in actions else "revert" if "reverted" in actions
            else "install" if "installed" in actions else "boot")
    detail = f"{e.get('version')} {'confirmed' if e.get('confirmed') else 'trial'}"
    extra = [a for a in actions if a not in ("installed", "reverted", "rescued")]
    if extra:
        detail += f" ({', '.join(extra)})"
    if e.get("refused"):
        detail += f", refused {e['refused']}"
    busy = e.get("flash_busy_ms") or 0
    if busy >= 1:
        detail += f", {busy / 1000:.2f} s of flash work"
    return step, detail


def _download(e: dict) -> tuple[str, str]:
    if e.get("offset"):
        return "resume", f"at byte {e['offset']} of {e.get('size')}"
    return "download", f"{e.get('size')} bytes of {e.get('version')}"


STEPS = {
    "boot": _boot,
    "no_bootable_image": lambda e: ("bricked", e.get("error", "")),
    "joined": lambda e: ("joined", ""),
    "download_started": _download,
    "download_failed": lambda e: ("download stalled", e.get("reason", "")),
    "power_lost": lambda e: ("power cut", e.get("reason", "")),
    "verified": lambda e: ("verify", f"ok, image hash {str(e.get('hash', ''))[:16]}"),
    "verification_failed": lambda e: ("verify", f"refused: {e.get('error')}"),
    "offer_declined": lambda e: ("declined", f"{e.get('file_version')}: {e.get('reason')}"),
    "alert": lambda e: ("alert", f"{e.get('code')} {ALERT_NAMES.get(e.get('code'), '')}".rstrip()),
    "alert_given_up": lambda e: ("alert given up", f"{e.get('code')} after {e.get('tries')} sends"),
    "cs06": lambda e: ("CS06", "activate now" if not e.get("execution_time")
                       else f"activate at UTC {e['execution_time']}"),
    "cs06_repeated": lambda e: ("CS06 again", f"answered {e.get('outcome')} again"),
    "activation": lambda e: ("activation", str(e.get("outcome"))),
    "activation_refused": lambda e: ("activation", f"refused: {e.get('error')}"),
    "waiting_for_activation": lambda e: ("waiting", "for the hub to activate"),
    "upgrade_scheduled": lambda e: ("scheduled", f"upgrade at t={e.get('at'):.1f} s"),
    "reset": lambda e: ("reset", e.get("reason", "")),
    "firmware_crashed": lambda e: ("crash", "the new firmware crashed"),
    "self_test_failed": lambda e: ("self-test", "failed"),
    "prove_timeout": lambda e: ("trial", "did not reach the hub in time"),
    "confirmed": lambda e: ("confirm", str(e.get("version"))),
    "gbcs_malformed": lambda e: ("GBCS", f"malformed: {e.get('error')}"),
}


def timeline(events: list[dict]) -> list[dict]:
    """[{"t", "step", "detail"}] for the events of one bridge's log that tell its update."""
    out = []
    for e in events:
        fn = STEPS.get(e.get("event"))
        if fn is None:
            continue
        step, detail = fn(e)
        out.append({"t": e.get("t"), "step": step, "detail": detail})
    return out
