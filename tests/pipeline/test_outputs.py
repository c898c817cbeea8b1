"""Outputs on their own threads (issue 11, items 4 and 5): a slow or failing sink never stalls
inference or the other sinks, stats name it, and stop/start keeps the sinks."""

from __future__ import annotations

import threading
import time

import pytest
from live_fakes import Fakes, ListSource, coded_frame, decode, wait_for

from avatarify_app.errors import SinkError
from avatarify_app.pipeline import NullSink, Session
from avatarify_app.pipeline.outputs import SinkRunner

FPS = 40.0


class PacedSource(ListSource):
    """A camera-like source: one frame every 1/FPS s, looping, real time."""

    def read(self):
        last = self.state.setdefault("last", 0.0)
        wait = last + 1.0 / FPS - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self.state["last"] = time.perf_counter()
        return super().read()


def paced():
    return PacedSource([coded_frame(i) for i in range(50)], realtime=True, loop=True)


class SlowSink:
    """Takes ``delay`` s per frame (interruptible by ``release`` so the test ends quickly)."""

    def __init__(self, name="slow", delay=2.0, queue_size=1):
        self.name = name
        self.delay = delay
        self.queue_size = queue_size
        self.release = threading.Event()
        self.got: list[int] = []
        self.threads: set[str] = set()
        self.closed = 0

    def send(self, frame, t):
        self.threads.add(threading.current_thread().name)
        self.release.wait(self.delay)
        self.got.append(decode(frame))

    def close(self):
        self.closed += 1


class CountingSink(NullSink):
    def __init__(self, name="good"):
        super().__init__(name)
        self.closed = 0

    def close(self):
        self.closed += 1


def run_for(seconds, *sinks):
    """Frames processed by the inference thread and each sink's count, over ``seconds``."""
    wiring = Fakes(coded=True).wiring()
    session = Session(paced(), avatar=coded_frame(999), sinks=list(sinks), stats_interval=0.05, **wiring)
    seen = []
    session.add_frame_observer(lambda e: seen.append(e.index))
    session.start()
    try:
        assert wait_for(lambda: len(seen) > 3)
        start = len(seen), [getattr(s, "frames", 0) for s in sinks]
        time.sleep(seconds)
        end = len(seen), [getattr(s, "frames", 0) for s in sinks]
        stats = session.stats()
    finally:
        for s in sinks:
            if isinstance(s, SlowSink):
                s.release.set()
        session.close()
    return end[0] - start[0], [b - a for a, b in zip(start[1], end[1], strict=True)], stats


def test_a_slow_sink_stalls_neither_inference_nor_the_other_sinks():
    frames_alone, (good_alone,), _ = run_for(1.5, CountingSink())
    slow = SlowSink(delay=2.0)
    frames, (good, _), stats = run_for(1.5, CountingSink(), slow)
    # Before: the 2 s sink ran on the inference thread, so about one frame went through.
    assert frames >= 0.7 * frames_alone and frames > 20
    assert good >= 0.7 * good_alone and good >= 0.9 * frames  # the healthy sink got (almost) every frame
    assert slow.threads == {"avatarify-sink-slow"}
    assert stats.sink_stats["slow"].state == "slow" and stats.sink_stats["good"].state == "ok"
    assert stats.sinks["slow"].startswith("slow:") and stats.sink_stats["slow"].dropped > 10
    assert "output slow slow:" in stats.line() and "output good" not in stats.line()


def test_a_failing_sink_is_named_with_its_reason_and_reported_once():
    class Broken:
        name = "broken"
        count = 0

        def send(self, frame, t):
            Broken.count += 1
            raise SinkError(f"disk full after {Broken.count} frames")  # the text changes every time

        def close(self):
            pass

    wiring = Fakes(coded=True).wiring()
    good = NullSink()
    session = Session(ListSource([coded_frame(i) for i in range(40)]), avatar=coded_frame(999),
                      sinks=[Broken(), good], **wiring)
    errors = []
    session.add_error_observer(errors.append)
    session.start()
    try:
        assert session.wait_ended(10)
        stats = session.stats()
    finally:
        session.close()
    assert good.frames == 40 and Broken.count == 40
    assert [e.stage for e in errors] == ["sink"]  # keyed on the kind, not on the changing text
    assert stats.sink_stats["broken"].state == "error" and "disk full" in stats.sinks["broken"]
    assert "output broken error: disk full" in stats.line()


def test_stop_and_start_twenty_times_keeps_the_outputs():
    wiring = Fakes(coded=True).wiring()
    sink = CountingSink()
    session = Session(ListSource([coded_frame(i) for i in range(30)], realtime=True, loop=True),
                      avatar=coded_frame(999), sinks=[sink], **wiring)
    counts = []
    for _ in range(20):
        before = sink.frames
        session.start()
        assert wait_for(lambda before=before: sink.frames > before + 2, 5)
        session.stop()
        assert not session.running and sink.closed == 0
        assert not [t for t in threading.enumerate() if t.name.startswith("avatarify")]
        counts.append(sink.frames - before)
    assert all(c > 2 for c in counts)  # before: nothing after the first stop
    session.close()
    assert sink.closed == 1
    assert session.stats().sinks == {}


def test_frames_of_a_file_are_never_dropped_even_by_a_slow_sink():
    """An unpaced file: every frame matters, so the inference thread waits for the outputs."""
    wiring = Fakes(coded=True).wiring()
    slow = SlowSink(delay=0.005)
    session = Session(ListSource([coded_frame(i) for i in range(60)]), avatar=coded_frame(999),
                      sinks=[slow], **wiring)
    session.start()
    try:
        assert session.wait_ended(20)
        assert slow.got == list(range(60))  # all of them, in order, sent before "ended"
    finally:
        session.close()


def test_a_recorder_queue_rides_out_a_stall_and_counts_what_it_drops():
    class Stalling(SlowSink):
        def send(self, frame, t):
            self.got.append(decode(frame))
            if len(self.got) == 1:
                self.release.wait(0.2)  # a short stall (the disk, the encoder)

    queued = Stalling(name="rec", queue_size=16)
    latest = Stalling(name="latest", queue_size=1)
    wiring = Fakes(coded=True).wiring()
    session = Session(paced(), avatar=coded_frame(999), sinks=[queued, latest], **wiring)
    seen = []
    session.add_frame_observer(lambda e: seen.append(e.index))
    session.start()
    try:
        assert wait_for(lambda: len(seen) > 30, 10)
    finally:
        session.close()
    stats = {s.name: s for s in (queued, latest)}
    assert len(stats["rec"].got) >= len(seen) - 1  # the queue absorbed the 0.2 s stall (~8 frames)
    assert len(stats["latest"].got) < len(seen) - 3  # newest-frame-wins dropped during it


def test_runner_counts_drops_and_drains_on_stop():
    sink = SlowSink(delay=0.05, queue_size=2)
    runner = SinkRunner(sink, lambda *a, **k: True)
    cancel = threading.Event()
    runner.start()
    for i in range(10):
        runner.offer(coded_frame(i), time.perf_counter(), wait=False, cancel=cancel)
    assert runner.stop(time.monotonic() + 5)
    # The first went straight to the sink; 2 waited; the rest were replaced (oldest first).
    assert runner.dropped >= 6 and sink.got[-2:] == [8, 9]
    assert len(sink.got) + runner.dropped == 10
    assert not runner.running


@pytest.mark.parametrize("wait", [False, True])
def test_offer_to_a_stopped_runner_never_blocks(wait):
    runner = SinkRunner(SlowSink(delay=0.0), lambda *a, **k: True)
    t0 = time.monotonic()
    for i in range(3):
        runner.offer(coded_frame(i), 0.0, wait=wait, cancel=threading.Event())
    assert time.monotonic() - t0 < 0.5 and runner.dropped == 2
