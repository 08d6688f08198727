"""The result rows of a premises run, as the demo table and `--json` show them."""
from __future__ import annotations

from bridge_emu.premises.runner import PremisesRun
from bridge_emu.premises.timeline import timeline


def bridge_rows(run: PremisesRun) -> list[dict]:
    """One row per bridge: what it was offered, what it runs now, what the update cost."""
    rows = []
    for s in run.slots:
        b = s.bridge
        r = b.record
        st = run.server.clients.get(s.address)
        downtime = sum((up - down) for down, up in r.reboots if up is not None)
        row = {
            "premises": run.spec.name, "bridge": s.spec.name, "type": s.spec.type,
            "offered": (s.spec.offer if s.spec.offer == "none" else f"{s.spec.offer}: nothing fits"
                        if s.offered_version is None else f"{s.spec.offer} {s.offered_version}"),
            "version_before": r.version_before, "version_after": r.version_after,
            "bytes": st.bytes_served if st else 0, "blocks": st.blocks_served if st else 0,
            "download_s": (round(r.download_done - r.download_started, 1)
                           if r.download_done is not None and r.download_started is not None else None),
            "resumed_from": r.resumed_from,
            "downtime_s": round(downtime, 2),
            "flash_erases": b.device.flash.stats["erases"] - r.erases_before,
            "alerts": r.alerts, "outcome": r.outcome if run.settled(s) else f"unsettled ({r.outcome})",
        }
        if s.spec.profile is not None:
            row["profile"] = s.spec.profile.name      # a user's own device standing in for `type`
        stall = run.stall(s)
        if stall is not None:
            row["stalled"] = stall
        row["timeline"] = timeline(b.events)
        if s.bridge.profile.power == "battery":
            ns = s.transport.stats
            flash_s = b.device.flash.stats["busy_us"] / 1e6
            row["energy_mJ"] = round((ns.radio_on_s * s.bridge.profile.active_ma
                                      + flash_s * 15.0) * 3.0, 1)
            row["polls"] = ns.polls
        rows.append(row)
    return rows
