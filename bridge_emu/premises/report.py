"""The result rows of a premises run, as the demo table and `--json` show them."""
from __future__ import annotations

from bridge_emu.premises.runner import PremisesRun
from bridge_emu.premises.timeline import timeline


def bridge_rows(run: PremisesRun) -> list[dict]:
    """One row per bridge: what it was offered, what it runs now, what the update cost."""
    rows = []
    for s in run.slots:
        b = s.bridge
        st = run.server.clients.get(s.address)
        row = record_row(run.spec.name, s.spec, b)
        row.update({
            "offered": (s.spec.offer if s.spec.offer == "none" else f"{s.spec.offer}: nothing fits"
                        if s.offered_version is None else f"{s.spec.offer} {s.offered_version}"),
            "bytes": st.bytes_served if st else 0, "blocks": st.blocks_served if st else 0,
            "outcome": b.record.outcome if run.settled(s) else f"unsettled ({b.record.outcome})",
        })
        stall = run.stall(s)
        if stall is not None:
            row["stalled"] = stall
        if s.bridge.profile.power == "battery":
            ns = s.transport.stats
            flash_s = b.device.flash.stats["busy_us"] / 1e6
            row["energy_mJ"] = round((ns.radio_on_s * s.bridge.profile.active_ma
                                      + flash_s * 15.0) * 3.0, 1)
            row["polls"] = ns.polls
        rows.append(row)
    return rows


def record_row(premises: str, spec, bridge) -> dict:
    """What any bridge's own record says, wherever it ran (a premises run, attached
    through a dongle): the row bridge_rows fills in with what the hub saw."""
    r = bridge.record
    row = {
        "premises": premises, "bridge": spec.name, "type": spec.type, "offered": spec.offer,
        "version_before": r.version_before, "version_after": r.version_after, "bytes": None, "blocks": None,
        "download_s": (round(r.download_done - r.download_started, 1)
                       if r.download_done is not None and r.download_started is not None else None),
        "resumed_from": r.resumed_from,
        "downtime_s": round(sum((up - down) for down, up in r.reboots if up is not None), 2),
        "flash_erases": bridge.device.flash.stats["erases"] - r.erases_before,
        "alerts": r.alerts, "outcome": r.outcome,
    }
    if spec.profile is not None:
        row["profile"] = spec.profile.name      # a user's own device standing in for `type`
    row["timeline"] = timeline(bridge.events)
    return row
