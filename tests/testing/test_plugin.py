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
