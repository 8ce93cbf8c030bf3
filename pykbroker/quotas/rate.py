"""A windowed rate, measured as Kafka's quota sensors measure it (metrics.stats.Rate over a WindowedSum).

The rate is kept in samples of `window_ms` (quota.window.size.seconds) each, `samples`
(quota.window.num) of them plus one that may overlap the start of the monitored window. A sample
whose last event is older than samples * window_ms is reset before measuring. The rate is the sum of
the samples divided by the time since the oldest sample began, but never by less than (samples - 1)
whole windows: a new client is measured as if it had been idle for that long, which is what lets it
burst up to (samples - 1) * window of quota before it is throttled, as in Kafka.
"""

from __future__ import annotations


class _Sample:
    __slots__ = ("start_ms", "last_event_ms", "total")

    def __init__(self, start_ms: int) -> None:
        self.reset(start_ms)

    def reset(self, now_ms: int) -> None:
        self.start_ms = self.last_event_ms = now_ms
        self.total = 0.0


class WindowedRate:
    """Per-second rate of recorded values; not thread-safe (the event loop owns it)."""

    def __init__(self, samples: int, window_ms: int) -> None:
        if samples < 1 or window_ms < 1:
            raise ValueError("a rate needs at least one sample of at least 1 ms")
        self.samples = samples
        self.window_ms = window_ms
        self._samples: list[_Sample] = []
        self._current = 0
        self.last_record_ms = 0

    def record(self, value: float, now_ms: int) -> None:
        """Add `value` to the current sample, starting a new one when its window has passed."""
        sample = self._current_sample(now_ms)
        if now_ms - sample.start_ms >= self.window_ms:
            sample = self._advance(now_ms)
        sample.total += value
        sample.last_event_ms = self.last_record_ms = now_ms

    def measure(self, now_ms: int) -> float:
        """The rate per second at `now_ms`."""
        self._purge(now_ms)
        total = sum(s.total for s in self._samples)
        return total / (self.window_size_ms(now_ms) / 1000.0)

    def window_size_ms(self, now_ms: int) -> int:
        """The time the rate is measured over (Kafka's Rate.windowSize)."""
        self._purge(now_ms)
        oldest = min((s.start_ms for s in self._samples), default=now_ms)
        elapsed = now_ms - oldest
        full = elapsed // self.window_ms
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window_ms
        return max(elapsed, 1)

    def _current_sample(self, now_ms: int) -> _Sample:
        if not self._samples:
            self._samples.append(_Sample(now_ms))
        return self._samples[self._current]

    def _advance(self, now_ms: int) -> _Sample:
        self._current = (self._current + 1) % (self.samples + 1)
        if self._current >= len(self._samples):
            self._samples.append(_Sample(now_ms))
        else:
            self._samples[self._current].reset(now_ms)
        return self._samples[self._current]

    def _purge(self, now_ms: int) -> None:
        expire_ms = self.samples * self.window_ms
        for sample in self._samples:
            if now_ms - sample.last_event_ms >= expire_ms:
                sample.reset(now_ms)


def throttle_time_ms(rate: float, bound: float, window_ms: int) -> int:
    """How long to wait for `rate` to fall to `bound` if nothing more is recorded (Kafka's
    QuotaUtils.throttleTime): O * W / (W + X) = T, so X = (O - T) / T * W."""
    return max(0, round((rate - bound) / bound * window_ms))
