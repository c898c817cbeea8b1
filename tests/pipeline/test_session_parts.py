"""The session's parts and the behaviour they own: error kinds (issue 11 item 8), calibration
below the stated match (item 14), saved calibrations (issue 12), the engine note, live
engine controls and timings, one crop setting."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from live_fakes import CODED_SIZE, ControlledEngine, Fakes, ListSource, coded_frame, decode, wait_for
from test_session import Collector, make

from avatarify_app.config import CropConfig, EngineConfig, LiveOptions, TrackingConfig
from avatarify_app.engines import REGISTRY, Availability, EngineSpec
from avatarify_app.errors import ConfigError, SinkError
from avatarify_app.frames import save_image
from avatarify_app.pipeline import Session, avatar_store
from avatarify_app.pipeline.observers import Observers
from avatarify_app.tracking.pose import CALIBRATION_MIN_MATCH


# -- error rate limit keyed on the kind (item 8) -------------------------------------------
def test_errors_of_one_kind_are_reported_once_whatever_their_text():
    observers = Observers()
    got = []
    observers.subscribe("error", got.append)

    def fail(n):
        raise SinkError(f"frame {n} at {n * 0.033:.3f} s could not be written")

    for n in range(50):
        try:
            fail(n)
        except SinkError as err:
            observers.report("sink", err, key="recorder")
    assert len(got) == 1  # before: 50 (the key was the message text)
    # Another sink, another stage or another type is another kind.
    for stage, error, key in (("sink", SinkError("x"), "vcam"), ("engine", SinkError("x"), "recorder"),
                              ("sink", RuntimeError("x"), "recorder")):
        assert observers.report(stage, error, key=key)
    assert len(got) == 4
    # Raised elsewhere (another line) is another kind too, even with the same text.
    try:
        raise SinkError("frame 1 at 0.033 s could not be written")
    except SinkError as err:
        assert observers.report("sink", err, key="recorder")


# -- auto-calibration below the stated match (item 14) -------------------------------------
def test_a_poor_auto_calibration_keeps_the_old_reference_and_says_which_way(running):
    # Fake pose match: 1 / (1 + |10 - code|). Codes 100.. match badly; code 10 matches exactly.
    frames = [coded_frame(100 + i) for i in range(20)]
    session, seen, _, _, source = make(frames, loop=True, pose_hinter=lambda a, b: "turn left, chin up")
    running(session)
    assert wait_for(lambda: len(seen.references) == 1)
    old = session.reference()
    assert decode(old[0]) == 100  # the first face frame
    request = session.auto_calibrate(8)
    assert wait_for(lambda: any(e.request == request for e in seen.errors), 10)
    rejected = next(e for e in seen.errors if e.request == request)
    assert rejected.stage == "calibration"
    assert "below the 50%" in rejected.message and "kept the previous calibration" in rejected.message
    assert "turn left, chin up" in rejected.message
    assert session.reference()[0] is old[0]  # before: the best of the bad frames replaced it
    assert seen.reference_for(request) is None
    assert all(e.pose_hint == "turn left, chin up" for e in seen.events if e.crop is not None)
    # A good match is still taken (and announced with the request).
    source.frames[5] = coded_frame(10)  # the source loops: frame 5 now matches
    again = session.auto_calibrate(len(frames) + 2)  # one frame may have been read before the change
    assert wait_for(lambda: seen.reference_for(again) is not None, 10)
    picked = seen.reference_for(again)
    assert picked.reason == "auto" and picked.pose_match == 1.0 >= CALIBRATION_MIN_MATCH
    assert decode(session.reference()[0]) == 10
    hints = [e.pose_hint for e in seen.events if e.crop is not None and decode(e.crop) == 10]
    assert hints and all(h is None for h in hints)  # a good match needs no hint


def test_a_poor_auto_calibration_without_a_reference_uses_its_best_frame(running):
    frames = [coded_frame(100 + i) for i in range(20)]
    session, seen, _, _, _ = make(frames, loop=True)
    request = session.auto_calibrate(6)  # before start: among the first six face frames
    running(session)
    assert wait_for(lambda: any(e.request == request for e in seen.errors), 10)
    assert session.reference() is not None
    first = seen.references[0]
    assert first.reason == "first_frame" and first.request is None  # not the user's calibration
    assert 0 < first.pose_match < CALIBRATION_MIN_MATCH
    message = next(e for e in seen.errors if e.request == request).message
    assert "the best of its frames is used until you calibrate" in message
    assert "expression" in message  # the fake meshes carry no pose: the expression is what differs


# -- saved calibrations (issue 12) ----------------------------------------------------------
@pytest.fixture
def avatar_file(tmp_path):
    path = tmp_path / "me.png"
    save_image(path, coded_frame(999, (64, 64)))
    return path


def test_saved_calibration_is_applied_and_user_references_are_saved(running, avatar_file):
    frames = [coded_frame(i) for i in range(30)]
    session, seen, _, _, _ = make(frames, loop=True, avatar=avatar_file, saved_calibrations=True)
    running(session)
    assert wait_for(lambda: len(seen.references) == 1)
    assert seen.references[0].reason == "first_frame"
    assert avatar_store.load_calibration(avatar_file) is None  # an unasked reference is not saved
    request = session.set_reference(coded_frame(77, (CODED_SIZE, CODED_SIZE)))
    assert wait_for(lambda: seen.reference_for(request) is not None)
    crop, _ = avatar_store.load_calibration(avatar_file)
    assert decode(crop) == 77
    session.close()

    # A new session (a headless run) with the same avatar starts from the saved one.
    again, seen2, engines2, _, _ = make(frames, loop=True, avatar=str(avatar_file), saved_calibrations=True)
    running(again)
    assert wait_for(lambda: len(seen2.events) > 5)
    assert [r.reason for r in seen2.references] == ["saved"]  # no "first_frame": the engine had one
    assert decode(again.reference()[0]) == 77 and decode(engines2[0].state["reference"]) == 77

    # The mirrored camera has no saved calibration: the reference is taken again, then saved.
    again.update_options(LiveOptions(mirror=True))
    assert wait_for(lambda: [r.reason for r in seen2.references][-2:] == ["mirror", "mirror"])
    asked = again.recalibrate()
    assert wait_for(lambda: seen2.reference_for(asked) is not None)
    assert avatar_store.load_calibration(avatar_file, mirror=True) is not None
    assert decode(avatar_store.load_calibration(avatar_file, mirror=False)[0]) == 77  # untouched


def test_without_the_store_nothing_is_saved_or_applied(running, avatar_file):
    avatar_store.save_calibration(avatar_file, coded_frame(55, (CODED_SIZE, CODED_SIZE)), None)
    session, seen, _, _, _ = make([coded_frame(i) for i in range(10)], loop=True, avatar=avatar_file)
    running(session)
    assert wait_for(lambda: len(seen.references) == 1)
    assert seen.references[0].reason == "first_frame" and decode(session.reference()[0]) != 55
    request = session.recalibrate()
    assert wait_for(lambda: seen.reference_for(request) is not None)
    assert decode(avatar_store.load_calibration(avatar_file)[0]) == 55


def test_a_gallery_name_is_an_avatar(running):
    path = avatar_store.find_avatar("astronaut")
    assert path is not None and path.name == "astronaut.png"
    avatar_store.save_calibration(path, coded_frame(66, (CODED_SIZE, CODED_SIZE)), None)  # under AVATARIFY_HOME
    session, seen, _, _, _ = make([coded_frame(i) for i in range(10)], loop=True, avatar="astronaut",
                                        saved_calibrations=True)
    running(session)
    assert wait_for(lambda: len(seen.events) > 3)
    assert session.has_avatar and [r.reason for r in seen.references] == ["saved"]
    assert decode(session.reference()[0]) == 66


def test_find_avatar():
    assert avatar_store.find_avatar("mona lisa").name == "mona_lisa.png"
    assert avatar_store.find_avatar("MONA-LISA").name == "mona_lisa.png"
    assert avatar_store.find_avatar("nobody") is None
    assert avatar_store.find_avatar("missing.png") is None  # a file name is never a gallery name
    assert "astronaut" in avatar_store.gallery_names()


def test_saved_framing_is_a_crop(avatar_file):
    assert avatar_store.saved_crop(avatar_file) == CropConfig()
    avatar_store.save_framing(avatar_file, 1.25, 0.1, -0.05)
    assert avatar_store.saved_crop(avatar_file) == CropConfig(zoom=1.25, offset_x=0.1, offset_y=-0.05)
    avatar_store.save_framing(avatar_file, float("nan"), 0.0, 0.0)  # a broken file: the default
    assert avatar_store.saved_crop(avatar_file) == CropConfig()


# -- the engine: why it runs, live controls, its own timings --------------------------------
@pytest.fixture
def registered():
    built = []

    def factory(config, motion):
        built.append(ControlledEngine(name="testonly", stage_ms={"network": 12.5, "server": 3.0, "engine": 1.0}))
        return built[-1]

    unregister = REGISTRY.register(EngineSpec(
        "testonly", "Test only", "a test engine", factory,
        lambda config: Availability(True, "always here")))
    yield built
    unregister()


def test_the_engine_note_says_why_and_controls_and_timings_reach_it(running, registered):
    wiring = Fakes(coded=True).wiring()
    del wiring["engine_factory"]  # the registry builds it
    session = Session(ListSource([coded_frame(i) for i in range(10)], loop=True), avatar=coded_frame(999),
                      engine_config=EngineConfig(name="testonly"), stats_interval=0.05, **wiring)
    seen = Collector(session)
    running(session)
    assert wait_for(lambda: len(seen.events) > 5)
    stats = session.stats()
    assert stats.engine == "testonly" and stats.engine_note == "testonly: asked for (always here)"
    assert stats.stage_ms["network"] == 12.5 and stats.stage_ms["server"] == 3.0
    assert stats.stage_ms["engine.engine"] == 1.0 and stats.stage_ms["engine"] >= 0  # ours is kept
    session.set_engine_controls({"strength": 0.5})
    assert wait_for(lambda: registered[0].controls)
    assert registered[0].controls == [{"strength": 0.5}] and registered[0].control_threads == ["avatarify-infer"]
    assert session.engine_config.options["strength"] == 0.5  # a rebuilt engine starts with it


def test_controls_for_an_engine_without_them_are_kept_quietly(running):
    session, seen, _, _, _ = make([coded_frame(i) for i in range(10)], loop=True)
    running(session)
    assert wait_for(lambda: len(seen.events) > 3)
    session.set_engine_controls({"strength": 0.25})
    assert wait_for(lambda: session.engine_config.options.get("strength") == 0.25)
    assert not seen.errors and "network" not in session.stats().stage_ms


def test_auto_says_what_it_chose_and_what_it_skipped(running):
    wiring = Fakes(coded=True).wiring()
    del wiring["engine_factory"]  # the registry chooses and builds it
    session = Session(ListSource([coded_frame(1)]), avatar=None, **wiring)
    running(session)
    assert session.wait_ready(30)
    stats = session.stats()
    choice = REGISTRY.choose(EngineConfig(name="auto"))
    assert stats.engine == choice.name and stats.engine_note == choice.explain()
    assert f"{choice.name}: chosen (" in stats.engine_note
    assert session.engine_config.name == "auto"  # as asked; the note says what it became


# -- crop settings: one place ----------------------------------------------------------------
def test_the_crop_lives_in_the_live_options(running):
    given = []

    def aligner(image, tracking):
        given.append(tracking)
        return SimpleNamespace(image=np.ascontiguousarray(image[:CODED_SIZE, :CODED_SIZE]), landmarks=None)

    crop = CropConfig(zoom=1.3, offset_y=0.1)
    built = []
    wiring = Fakes(coded=True).wiring()
    session = Session(ListSource([coded_frame(1)]), avatar=coded_frame(999, (64, 64)), options=LiveOptions(crop=crop),
                      aligner=aligner, tracker_factory=lambda t: built.append(t) or wiring["tracker_factory"](t),
                      engine_factory=wiring["engine_factory"], pose_matcher=wiring["pose_matcher"])
    running(session)
    assert session.wait_ended(5)
    assert built[0].crop == crop  # the driving face is framed with the user's zoom and offsets
    assert given[0].crop == CropConfig(size=crop.size)  # the portrait the default way
    with pytest.raises(ConfigError, match="two different crop settings"):
        Session(None, options=LiveOptions(crop=crop), tracking=TrackingConfig(crop=CropConfig(zoom=2.0)))
    Session(None, options=LiveOptions(crop=crop), tracking=TrackingConfig(crop=crop))  # the same: fine
