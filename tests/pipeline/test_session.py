"""Session behaviour with plain fakes: threads, hand-over, controls, output policy, faults."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
from live_fakes import (
    FakeEngine,
    Fakes,
    ListSource,
    black,
    coded_frame,
    decode,
    wait_for,
)

from avatarify_app.config import CropConfig, EngineConfig, LiveOptions, MotionOptions
from avatarify_app.errors import BadImageError, CameraError, NoFaceError, SinkError
from avatarify_app.pipeline import LatestSlot, NullSink, PreviewSink, Session, Stats

AVATAR = coded_frame(999)


class Collector:
    """Frame/error/stats observers that keep what they get."""

    def __init__(self, session: Session) -> None:
        self.events, self.errors, self.stats, self.references = [], [], [], []
        session.add_frame_observer(self.events.append)
        session.add_error_observer(self.errors.append)
        session.add_stats_observer(self.stats.append)
        session.add_reference_observer(self.references.append)

    def statuses(self):
        return [e.status for e in self.events]

    def stages(self):
        return [e.stage for e in self.errors]

    def reference_for(self, request):
        """The ReferenceEvent with a crop caused by ``request``, or None (yet)."""
        return next((r for r in self.references if r.request == request and r.crop is not None), None)


def make(frames, *, realtime=False, loop=False, avatar=AVATAR, sinks=(), engine_kw=None, **kw):
    fakes = Fakes(coded=True, engine_kw=engine_kw or {})
    wiring, engines, trackers = fakes.wiring(), fakes.engines, fakes.trackers
    wiring.update({k: kw.pop(k) for k in list(kw) if k in wiring})  # a test may swap one fake
    source = ListSource(list(frames), realtime=realtime, loop=loop)
    session = Session(source, avatar=avatar, sinks=sinks, stats_interval=0.05, **wiring, **kw)
    return session, Collector(session), engines, trackers, source


def test_latest_slot_keeps_newest_and_counts_drops():
    slot = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.take(0.01) == 4
    assert slot.dropped == 4
    assert slot.take(0.01) is not None and slot.take(0.01) is slot.take(0.01)  # empty marker


def test_latest_slot_waiting_put_loses_nothing():
    slot = LatestSlot()
    got = []

    def consume():
        while len(got) < 50:
            item = slot.take(0.1)
            if isinstance(item, int):
                got.append(item)
                time.sleep(0.001)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(50):
        slot.put(i, wait=True)
    t.join(5)
    assert got == list(range(50)) and slot.dropped == 0


def test_every_frame_in_order_when_not_realtime(running):
    sink_frames = []
    session, seen, engines, _, _ = make([coded_frame(i) for i in range(60)],
                                        sinks=[PreviewSink(lambda f, t: sink_frames.append(decode(f)))])
    running(session)
    assert session.wait_ended(10)
    assert [e.index for e in seen.events] == list(range(60))
    assert sink_frames == list(range(60))
    assert set(seen.statuses()) == {"ok"}
    stats = session.stats()
    assert stats.frames == 60 and stats.dropped == 0 and stats.engine == "fake"
    assert stats.latency_ms_p95 >= stats.latency_ms_p50 > 0
    assert set(stats.stage_ms) == {"capture", "tracking", "engine", "output"}
    assert engines[0].state["built_on"] == "avatarify-infer" == engines[0].state["thread"]
    ref = session.reference()
    assert ref is not None and decode(ref[0]) == 0  # the first face frame became the reference
    assert not seen.errors
    session.stop()
    assert engines[0].state["closed"] and not session.running
    assert seen.stats and isinstance(seen.stats[-1], Stats)


def test_realtime_source_drops_stale_frames_never_queues(running):
    session, seen, _, _, _ = make([coded_frame(i) for i in range(400)], realtime=True,
                                  engine_kw={"delay_s": 0.01})
    running(session)
    assert session.wait_ended(20)
    indices = [e.index for e in seen.events]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    stats = session.stats()
    assert stats.dropped > 100
    assert stats.frames + stats.dropped >= 399  # every frame was either processed or dropped


def test_no_face_holds_last_good_output_and_card_before(running):
    frames = [black(), coded_frame(1), coded_frame(2), black(), black(), coded_frame(5)]
    session, seen, _, _, _ = make(frames)
    running(session)
    assert session.wait_ended(10)
    assert seen.statuses() == ["no_face", "ok", "ok", "no_face", "no_face", "ok"]
    first = seen.events[0].output
    assert first.std() > 0 and decode(first) != 0  # a card, not a black/garbage frame
    assert seen.events[3].output is seen.events[2].output is seen.events[4].output
    assert seen.events[0].crop is None and seen.events[1].crop is not None


def test_no_avatar_sends_a_card_not_the_camera(running):
    session, seen, _, _, _ = make([coded_frame(i) for i in range(5)], avatar=None)
    running(session)
    assert session.wait_ended(10)
    assert set(seen.statuses()) == {"no_avatar"}
    for e in seen.events:
        assert e.output.shape == (32, 32, 3) and decode(e.output) != e.index
        assert decode(e.camera) == e.index


def test_passthrough_and_mirror(running):
    frame = coded_frame(3)
    frame[:, :8] = (1, 2, 3)  # left edge marked
    session, seen, _engines, trackers, _ = make([frame], loop=True)
    running(session)
    assert wait_for(lambda: len(seen.events) > 3)
    session.update_options(LiveOptions(passthrough=True))
    assert wait_for(lambda: seen.events[-1].status == "passthrough")
    assert seen.events[-1].output is seen.events[-1].camera
    session.update_options(LiveOptions(passthrough=True, mirror=True))
    assert wait_for(lambda: tuple(seen.events[-1].camera[0, -1]) == (1, 2, 3))
    assert "reset" in trackers[0].calls
    assert session.options.mirror


def test_motion_and_crop_options_reach_engine_and_tracker(running):
    session, seen, engines, trackers, _ = make([coded_frame(1)], loop=True)
    running(session)
    assert wait_for(lambda: len(seen.events) > 2)
    motion = MotionOptions(relative=False, adapt_scale=False)
    crop = CropConfig(zoom=1.2, offset_x=0.1)
    session.update_options(LiveOptions(motion=motion, crop=crop))
    assert wait_for(lambda: engines[0].options[-1:] == [motion])
    assert wait_for(lambda: ("set_crop", crop) in trackers[0].calls)


def test_recalibrate_takes_the_next_face_frame(running):
    frames = [coded_frame(i) for i in range(300)]
    session, seen, _, _, _ = make(frames, loop=True)
    running(session)
    assert wait_for(lambda: len(seen.events) > 5)
    assert decode(session.reference()[0]) == 0
    session.recalibrate()
    assert wait_for(lambda: session.reference() is not None and decode(session.reference()[0]) != 0)
    explicit = coded_frame(77, (32, 32))
    session.set_reference(explicit, None)
    assert wait_for(lambda: decode(session.reference()[0]) == 77)


def test_auto_calibrate_picks_best_pose_match(running):
    # Avatar landmarks are 10 everywhere; the fake tracker's landmarks are the frame code.
    frames = [coded_frame(i) for i in range(40)]
    session, seen, _, _, _ = make(frames, loop=True)
    running(session)
    assert wait_for(lambda: len(seen.events) > 45, 30)  # past frame 10 once
    request = session.auto_calibrate(n_frames=40)
    # The pick is announced once the 40th face frame was seen (every frame counts: not realtime).
    assert wait_for(lambda: seen.reference_for(request) is not None, 30)
    picked = seen.reference_for(request)
    assert picked.reason == "auto" and picked.pose_match == 1.0 and decode(picked.crop) == 10
    assert decode(session.reference()[0]) == 10
    statuses = seen.statuses()
    last = max(i for i, s in enumerate(statuses) if s == "calibrating")
    first = statuses.index("calibrating")
    assert last - first + 1 == 39  # the 40th face frame ends it
    assert wait_for(lambda: len(seen.events) > last + 3, 30)
    assert set(seen.statuses()[last + 1:]) == {"ok"}
    assert any(e.pose_match == 1.0 for e in seen.events)


def test_auto_calibrate_without_avatar_is_reported(running):
    session, seen, _, _, _ = make([coded_frame(1)], loop=True, avatar=None)
    running(session)
    session.auto_calibrate(5)
    assert wait_for(lambda: "avatar" in seen.stages())
    assert "avatar" in seen.errors[0].message


def test_switch_engine_while_running(running):
    session, seen, engines, _, _ = make([coded_frame(i) for i in range(30)], loop=True)
    running(session)
    assert wait_for(lambda: len(seen.events) > 5)
    session.set_engine(EngineConfig(name="landmarks"))
    assert wait_for(lambda: len(engines) == 2 and engines[0].state.get("closed"))
    assert engines[1].state["source"] is not None and engines[1].has_reference()
    assert engines[1].state["built_on"] == "avatarify-infer"
    n = len(seen.events)
    assert wait_for(lambda: len(seen.events) > n + 5)
    assert seen.statuses()[-1] == "ok"
    # A failing engine is reported and the working one stays.
    session.set_engine(EngineConfig(name="fomm"))
    assert wait_for(lambda: "engine" in seen.stages())
    assert not engines[1].state.get("closed") and session.engine_config.name == "landmarks"
    n = len(seen.events)
    assert wait_for(lambda: len(seen.events) > n + 5 and seen.statuses()[-1] == "ok")


def test_engine_that_cannot_be_built_leaves_the_session_running(running):
    session, seen, _, _, _ = make([coded_frame(1)], loop=True, engine_config=EngineConfig(name="fomm"))
    running(session)
    assert session.wait_ready(5)
    assert wait_for(lambda: len(seen.events) > 3)
    assert seen.stages()[0] == "engine" and set(seen.statuses()) == {"no_engine"}
    session.set_engine(EngineConfig(name="landmarks"))
    assert wait_for(lambda: seen.statuses()[-1] == "ok")


def test_fault_source_dies_mid_stream(running):
    frames = [coded_frame(i) for i in range(20)]
    frames[7] = None  # the fake camera raises once there
    session, seen, _, _, source = make(frames)
    running(session)
    assert session.wait_ended(10)
    assert seen.stages() == ["source"] and isinstance(seen.errors[0].error, CameraError)
    assert "camera" in seen.errors[0].message.lower()
    assert [e.index for e in seen.events][-1] >= 17  # kept going after the failure
    assert source.state["opened"] == 2  # reopened after the failure


def test_fault_sink_raises(running):
    class Broken:
        name = "broken"

        def send(self, frame, t):
            raise SinkError("fake sink is broken")

        def close(self):
            pass

    good = NullSink()
    session, seen, _, _, _ = make([coded_frame(i) for i in range(30)], sinks=[Broken(), good])
    running(session)
    assert session.wait_ended(10)
    assert good.frames == 30 and len(seen.events) == 30
    assert seen.stages() == ["sink"]  # reported once, not 30 times
    assert session.stats().sinks["broken"].startswith("error")


def test_fault_avatar_switched_and_bad_avatar(running, tmp_path):
    session, seen, engines, _, _ = make([coded_frame(i) for i in range(50)], loop=True)
    running(session)
    assert wait_for(lambda: len(seen.events) > 5)
    new = coded_frame(500)
    session.set_avatar(new)
    assert wait_for(lambda: decode(engines[0].state["source"]) == 500)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    session.set_avatar(bad)
    session.set_avatar(black((80, 80)))  # decodes, but has no face
    assert wait_for(lambda: seen.stages().count("avatar") == 2)
    assert isinstance(seen.errors[0].error, BadImageError) and "hint" in seen.errors[0].message
    assert isinstance(seen.errors[1].error, NoFaceError)
    assert decode(engines[0].state["source"]) == 500 and session.has_avatar  # the old one stays
    n = len(seen.events)
    assert wait_for(lambda: len(seen.events) > n + 5 and seen.statuses()[-1] == "ok")


def test_set_source_and_sink_management_while_running(running):
    session, seen, _, _, _ = make([coded_frame(i) for i in range(5)])
    running(session)
    assert session.wait_ended(10)
    sink = NullSink()
    session.add_sink(sink)
    session.set_source(ListSource([coded_frame(100 + i) for i in range(10)]))
    assert session.wait_ended(10) and wait_for(lambda: sink.frames == 10)
    assert decode(seen.events[-1].camera) == 109
    session.remove_sink(sink)
    session.set_source(ListSource([coded_frame(i) for i in range(10)]))
    assert session.wait_ended(10)
    assert sink.frames == 10


def test_unsubscribe_restart_and_debug(running):
    session, seen, _, _, _ = make([coded_frame(1)], loop=True, options=LiveOptions(debug=True))
    other = []
    unsubscribe = session.add_frame_observer(other.append)
    running(session)
    assert wait_for(lambda: len(other) > 2)
    assert set(seen.events[-1].debug) == {"kp_source", "kp_driving", "occlusion", "flow"}
    unsubscribe()
    n = len(other)
    time.sleep(0.1)
    assert len(other) == n
    session.stop()
    assert not session.running
    session.start()
    m = len(seen.events)
    assert wait_for(lambda: len(seen.events) > m + 2)
    session.stop()


def test_stop_from_an_observer_does_not_deadlock(running):
    session, _seen, _, _, _ = make([coded_frame(1)], loop=True)
    session.add_frame_observer(lambda e: session.stop() if e.index == 3 else None)
    running(session)
    assert wait_for(lambda: not session.running, 5)


def test_stats_observers_get_snapshots(running):
    session, seen, _, _, _ = make([coded_frame(1)], loop=True)
    running(session)
    assert wait_for(lambda: any(s.frames > 0 for s in seen.stats))
    s = [s for s in seen.stats if s.frames > 0][-1]
    assert s.fps > 0 and s.engine == "fake" and s.device == "cpu (fake)"
    assert "fps" in s.line()


def test_frozen_fake_is_an_engine():
    from avatarify_app.engines import Engine

    assert isinstance(FakeEngine(), Engine)
    assert replace(FakeEngine(), size=64).size == 64
    assert np.array_equal(FakeEngine().predict(coded_frame(1, (32, 32))), coded_frame(1, (32, 32)))


def test_avatar_crop_is_the_aligned_avatar_at_engine_size(running):
    session, seen, engines, _, _ = make([coded_frame(i) for i in range(50)], loop=True,
                                        avatar=coded_frame(999, (80, 60)))
    assert session.avatar_crop() is None  # applied on the inference thread
    running(session)
    assert wait_for(lambda: len(seen.events) > 3)
    crop = session.avatar_crop()
    assert crop.shape == (32, 32, 3) and decode(crop) == 999  # the aligner's crop, engine size
    assert np.array_equal(crop, engines[0].state["source"])  # exactly what the engine animates
    assert not crop.flags.writeable
    assert seen.events[-1].avatar is crop  # the same array with every frame, no copies
    session.set_avatar(coded_frame(500))
    assert wait_for(lambda: seen.events[-1].avatar is not crop)
    assert decode(seen.events[-1].avatar) == 500 and decode(session.avatar_crop()) == 500


def test_avatar_crop_follows_the_engine_size(running):
    built = []

    def engine_factory(config, motion):
        built.append(FakeEngine(size=48 if config.name == "landmarks" else 32))
        return built[-1]

    session, seen, _, _, _ = make([coded_frame(i) for i in range(20)], loop=True,
                                  engine_factory=engine_factory)
    running(session)
    assert wait_for(lambda: len(seen.events) > 3)
    assert session.avatar_crop().shape == (32, 32, 3)
    session.set_engine(EngineConfig(name="landmarks"))
    assert wait_for(lambda: seen.events[-1].avatar.shape == (48, 48, 3))
    assert session.avatar_crop() is seen.events[-1].avatar and decode(session.avatar_crop()) == 999
    assert np.array_equal(session.avatar_crop(), built[-1].state["source"])


def test_no_avatar_means_no_avatar_crop(running):
    session, seen, _, _, _ = make([coded_frame(i) for i in range(5)], avatar=None)
    running(session)
    assert session.wait_ended(10)
    assert session.avatar_crop() is None and all(e.avatar is None for e in seen.events)


def test_reference_events_say_why_and_for_whom(running):
    session, seen, _, _, _ = make([coded_frame(i) for i in range(40)], loop=True)
    running(session)
    # at start the first face frame is taken, unasked
    assert wait_for(lambda: len(seen.references) == 1)
    first = seen.references[0]
    assert (first.reason, first.request, first.mirror) == ("first_frame", None, False)
    assert decode(first.crop) == 0 and first.landmarks.shape == (468, 2)

    asked = session.recalibrate()
    assert wait_for(lambda: seen.reference_for(asked) is not None)
    cleared, taken = [r for r in seen.references if r.request == asked]
    assert cleared.crop is None and cleared.reason == "recalibrate"
    assert taken.reason == "recalibrate" and np.array_equal(taken.crop, session.reference()[0])

    explicit = coded_frame(77, (32, 32))
    put = session.set_reference(explicit, None)
    assert put != asked
    assert wait_for(lambda: seen.reference_for(put) is not None)
    event = seen.reference_for(put)
    assert event.reason == "set" and decode(event.crop) == 77 and event.landmarks is None
    assert event.crop is not explicit  # the event owns its arrays

    # A mirror change clears the reference; the next face frame (mirrored) is announced.
    n = len(seen.references)
    session.update_options(LiveOptions(mirror=True))
    assert wait_for(lambda: len(seen.references) >= n + 2)
    cleared, taken = seen.references[n:n + 2]
    assert (cleared.reason, cleared.crop, cleared.mirror) == ("mirror", None, True)
    assert taken.reason == "mirror" and taken.request is None and taken.mirror and taken.crop is not None
    n = len(seen.references)
    time.sleep(0.2)  # frames keep flowing; nothing else changes the reference
    assert len(seen.references) == n


def test_reference_observer_failure_does_not_stop_frames(running):
    session, seen, _, _, _ = make([coded_frame(i) for i in range(30)], loop=True)

    def broken(event):
        raise RuntimeError("observer bug")

    session.add_reference_observer(broken)
    running(session)
    assert wait_for(lambda: len(seen.references) == 1 and len(seen.events) > 5)
    assert seen.statuses()[-1] == "ok" and not seen.errors


def test_auto_calibrate_without_comparable_frames_is_reported(running):
    session, seen, _, _, _ = make([coded_frame(i) for i in range(30)], loop=True,
                                  pose_matcher=lambda a, b: 1 / 0)
    running(session)
    assert wait_for(lambda: len(seen.events) > 3)
    request = session.auto_calibrate(n_frames=3)
    assert wait_for(lambda: any("Auto-calibration found no frame" in e.message for e in seen.errors))
    assert seen.reference_for(request) is None



def test_sinks_added_with_a_new_source_get_exactly_its_frames(running):
    """``set_source(s, add_sinks=(k,))``: k gets every frame of s from its first, none of the old one."""
    old = [coded_frame(1000 + i) for i in range(50)]
    session, seen, _, _, _ = make(old, realtime=True, loop=True, engine_kw={"delay_s": 0.005})
    running(session)
    for _ in range(3):  # repeat: the switch can land anywhere in the old source's frame
        assert wait_for(lambda: len(seen.events) > 5 and decode(seen.events[-1].camera) >= 1000)
        got = []
        sink = PreviewSink(lambda f, t, got=got: got.append(decode(f)), name="rec")
        # not realtime: every frame of the new source is processed
        session.set_source(ListSource([coded_frame(i) for i in range(30)]), add_sinks=(sink,))
        assert session.wait_ended(10)
        assert wait_for(lambda got=got: len(got) >= 30)
        assert got == list(range(30))
        session.remove_sink(sink)
        session.set_source(ListSource(old, realtime=True, loop=True))
        assert wait_for(lambda: decode(seen.events[-1].camera) >= 1000)
        assert len(got) == 30
