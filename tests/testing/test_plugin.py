"""The pytest plugin as a user meets it: installed with the package (entry point
pytest11), its fixtures used from a test file of the user's own, run with pytester."""
from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.native


def test_a_users_test_drives_a_bridge_on_virtual_time_through_a_power_cut(pytester):
    pytester.makepyfile(test_users_own="""
        def test_b4_survives_a_cut_in_its_download(bridge):
            site = bridge("B4")                      # a B4 behind a B1, offered its next image
            site.advance(20)                         # the download is under way
            assert site.bridge("b4").client.offset > 0
            site.cut_power("b4", at_op=3, tear="bits")
            assert site.run_until_settled()
            assert site.outcome("b4") == "upgraded" and site.version("b4") == "1.1.0+0"
            assert site.bridge("b4").record.resumed_from, "the download resumed from its saved offset"
            assert any(e["event"] == "power_lost" for e in site.events("b4"))

        def test_a_faulty_image_rolls_back(bridge):
            site = bridge("B1", offer="faulty")
            assert site.run_until_settled()
            assert site.outcome("b1") == "rolled back" and site.version("b1") == "1.0.0+0"
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_premises_hubs_and_flash_files(pytester):
    pytester.makepyfile(test_users_own="""
        import pathlib

        def test_a_builtin_premises_with_another_hub(premises):
            site = premises("gsme-mains", hub={"personality": "zigpy", "activation": "none"})
            assert site.run_until_settled()
            assert {site.outcome(b) for b in ("b1", "b2")} == {"upgraded"}
            assert (pathlib.Path(site.run_dir) / "b2" / "flash.bemu").is_file()

        def test_premises_text_in_memory(premises):
            site = premises('''
                name = "mine"
                [[bridge]]
                name = "b1"
                type = "B1"
                offer = "none"
                [[bridge]]
                name = "b3"
                type = "B3"
                parent = "b1"
                offer = "next"
            ''', in_memory=True, seed=4)
            assert site.run_until_settled() and site.outcome("b3") == "upgraded"
            assert site.run_dir is None

        def test_a_factory_fresh_flash_file(bridge_flash, tmp_path):
            device = bridge_flash("B3")
            assert (tmp_path / "flash.bemu").is_file()
            assert device.state.state == "confirmed"
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_failing_test_shows_the_bridges_state_and_events(pytester):
    pytester.makepyfile(test_users_own="""
        def test_expects_too_much(bridge):
            site = bridge("B4", offer="faulty")
            site.run_until_settled()
            assert site.outcome("b4") == "upgraded"      # it rolls back: this fails
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*bridge-emu: premises b4-site*",
                                 "*b4 (B4): running, runs 1.0.0+0, outcome rolled back*",
                                 '*"event": "self_test_failed"*',
                                 '*flash: {"state": {"state": "confirmed"*'])


def test_another_image_folder_and_a_bad_one(pytester):
    pytester.makepyfile(test_users_own="""
        def test_uses_the_images(bridge_emu_images):
            assert bridge_emu_images.entry("B1", "next")["version"] == "1.1.0"
    """)
    from bridge_emu.premises.images import DEFAULT_IMAGES
    pytester.runpytest("-p", "no:cacheprovider", f"--bridge-emu-images={DEFAULT_IMAGES}").assert_outcomes(passed=1)
    bad = pytester.runpytest("-p", "no:cacheprovider", "--bridge-emu-images=/nonexistent")
    bad.assert_outcomes(errors=1)
    bad.stdout.fnmatch_lines(["*/nonexistent: not an image folder*"])


def test_the_bridge_fixture_takes_the_remote_bridges_link(bridge):
    site = bridge("B2", offer="none", link={"loss": 0.2, "latency_ms": 40})
    spec = site.run.net.link(site.slot("b2").address).spec
    assert (spec.loss, spec.latency_s) == (0.2, 0.04)
    assert bridge("B3", offer="none").run.net.link(2).spec.loss == 0.0      # loss-free unless told


def test_a_users_host_stack_meets_the_bridges_through_the_virtual_dongle_fixture(pytester):
    """The user's stack here is zigpy + zigpy-znp (a test dependency of ours, GPL-3.0: the user's
    own code in their own suite); it forms a network on the fixture's dongle, lets the bridges in
    and interviews them. The second test fails on purpose: its report carries the bridges' state."""
    pytester.makepyfile(test_users_own="""
        import asyncio
        from zigpy_znp.zigbee.application import ControllerApplication

        async def models_seen(url):
            app = ControllerApplication({
                "device": {"path": url}, "database_path": None, "backup_enabled": False,
                "topo_scan_enabled": False, "ota": {"enabled": False},
                "znp_config": {"connect_rts_pin_states": [], "connect_dtr_pin_states": []}})
            await asyncio.wait_for(app.startup(auto_form=True), 30)
            try:
                await app.permit(60)
                for _ in range(1500):
                    models = sorted(d.model for d in app.devices.values()
                                    if d.is_initialized and (d.model or "").startswith("ALT-HAN"))
                    if len(models) == 2:
                        break
                    await asyncio.sleep(0.02)
                return models
            finally:
                await app.shutdown()

        def test_my_stack_interviews_the_bridges(virtual_dongle):
            dongle = virtual_dongle("ihd", protocol="znp", speed=4)
            assert dongle.url.startswith("socket://127.0.0.1:")
            assert asyncio.run(models_seen(dongle.url)) == ["ALT-HAN-B1", "ALT-HAN-B4"]
            assert any(e["event"] == "joined" for e in dongle.events("b4"))

        def test_fails_on_purpose(virtual_dongle):
            dongle = virtual_dongle("ihd", protocol="ezsp", in_memory=True)
            assert dongle.outcome("b4") == "upgraded"        # nobody served it: fails
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*bridge-emu: premises ihd*", "*premises ihd behind a virtual dongle at socket://127.0.0.1:*",
                                 "*b4 (B4): *outcome no update*"])
