"""A virtual coordinator dongle for your own test suite: a premises behind a ZNP or EZSP
stick on socket://127.0.0.1, for the host stack or OTA server under test to open, as
`bridge-emu dongle` serves it. It runs on a thread of its own (its own asyncio loop, in
real time times `speed`), so a test may be plain or async.

    from bridge_emu.testing.dongle import VirtualDongle

    with VirtualDongle("ihd", protocol="znp", speed=8) as dongle:
        my_stack.connect(dongle.url)                 # socket://127.0.0.1:PORT
        ...                                          # form, permit joining, interview, update
    assert dongle.outcome("b4") == "upgraded"        # read once it is closed

With a scenario (premises.scenario), its events are applied as they come and
`wait(timeout)` returns its ScenarioResult once it is over.
"""
from __future__ import annotations

import asyncio
import json
import pathlib
import queue
import threading

from bridge_emu.dongle.rig import DongleRig, serve
from bridge_emu.errors import BridgeEmuError
from bridge_emu.premises.images import DEFAULT_IMAGES, ImageSet
from bridge_emu.premises.scenario import Scenario, ScenarioResult, maybe_scenario
from bridge_emu.testing import premises_spec

__all__ = ["VirtualDongle"]


class VirtualDongle:
    """A premises (a built-in name, a TOML file, TOML text or a PremisesSpec; or a Scenario,
    or a scenario file) behind a virtual dongle, listening on 127.0.0.1 once built."""

    def __init__(self, what, *, protocol: str = "znp", speed: float = 1.0, images: ImageSet | None = None,
                 run_dir: pathlib.Path | None = None, start_timeout_s: float = 30.0):
        self.scenario = what if isinstance(what, Scenario) else _maybe_scenario_file(what)
        self.spec = self.scenario.spec if self.scenario is not None else premises_spec(what)
        self.images = images or ImageSet(DEFAULT_IMAGES)
        self.rig: DongleRig | None = None
        self.result: ScenarioResult | None = None
        self.error: BaseException | None = None
        self._said: queue.Queue = queue.Queue()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None

        def make_rig(link, loop):
            self.rig = DongleRig(self.spec, self.images, protocol, link, run_dir=run_dir, loop=loop, speed=speed)
            return self.rig

        async def main():
            self._stop = asyncio.Event()
            try:
                self.result = await serve(
                    self.spec, self.images, protocol, listen="127.0.0.1:0", pty=False, run_dir=run_dir,
                    resume=False, allow_remote=False, announce=self._said.put, warn=lambda line: None,
                    stop=self._stop, speed=speed, make_rig=make_rig, scenario=self.scenario)
            except BaseException as e:     # noqa: BLE001 - kept for the test's thread, said at close()
                self.error = e
                self._said.put(None)

        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(main(),),
                                        name=f"bridge-emu dongle {self.spec.name}", daemon=True)
        self._thread.start()
        try:
            line = self._said.get(timeout=start_timeout_s)
        except queue.Empty:
            line = None
        if line is None:
            self.close()
            raise BridgeEmuError(f"virtual dongle for {self.spec.name}: did not start"
                                 + (f" ({self.error})" if self.error else ""))
        self.url = line.removeprefix("listening on ")

    # -- what a test asks

    def wait(self, timeout_s: float | None = None) -> ScenarioResult | None:
        """Until the scenario is over (the dongle then stops); its result, or None on timeout."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return None
        self._raise()
        return self.result

    def outcome(self, name: str) -> str:
        return self._bridge(name).record.outcome

    def events(self, name: str) -> list[dict]:
        return list(self._bridge(name).events)

    def report(self, events: int = 30) -> str:
        """Each bridge's state, outcome and last events, as text (the plugin's failure report)."""
        lines = [f"premises {self.spec.name} behind a virtual dongle at {getattr(self, 'url', '?')}"]
        for s in self.rig.run.slots if self.rig is not None else ():
            b = s.bridge
            lines.append(f"  {s.spec.name} ({s.spec.type}): {b.phase.value}, outcome {b.record.outcome}")
            lines += ["    " + json.dumps(e, sort_keys=True) for e in b.events[-events:]]
        return "\n".join(lines)

    def close(self) -> None:
        """Stop the dongle (its devices' flash files are closed); say what went wrong in it, if anything."""
        if self._thread.is_alive() and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()
        self._raise()

    def __enter__(self) -> VirtualDongle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _bridge(self, name: str):
        slot = next((s for s in self.rig.run.slots if s.spec.name == name), None) if self.rig else None
        if slot is None:
            raise BridgeEmuError(f"premises {self.spec.name}: no bridge {name!r}")
        return slot.bridge

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def _maybe_scenario_file(what) -> Scenario | None:
    """A scenario file's Scenario; None for anything else (premises_spec reads those)."""
    if isinstance(what, str | pathlib.Path) and "\n" not in str(what) and str(what).endswith(".toml"):
        return maybe_scenario(str(what))
    return None
