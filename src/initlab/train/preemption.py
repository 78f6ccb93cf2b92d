"""Stop at a step boundary when the scheduler asks, instead of dying mid-step.

SLURM sends SIGTERM before it kills a preempted, requeued or cancelled job, and a
configurable signal (submitit: SIGUSR2) before a time limit. While a run trains, these only
set a flag; the loop then saves last.pt at the next step boundary and the run records
itself as `interrupted`. Afterwards `forward()` hands the signal to whatever handled it
before: under submitit that is its checkpoint-and-requeue handler, so chaining keeps it
working; elsewhere the process exits with 128 + the signal number, as a shell reports it.
"""

import logging
import signal
import threading
from typing import NoReturn

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


class StopRequest:
    """A context manager: inside it the stop signals set `signum` (the first one received)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # Python handles signals only there
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:  # an ignored signal stays ignored
                    self._previous[sig] = signal.signal(sig, self._record)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)  # None: set outside Python

    def _record(self, signum: int, frame) -> None:
        if self.signum is None:
            log.warning("%s received: stopping at the next step boundary", signal.Signals(signum).name)
            self.signum = signum

    def forward(self) -> NoReturn:
        """Act on the received signal as the process would have without us (after __exit__)."""
        previous = self._previous.get(self.signum)
        if callable(previous):
            previous(self.signum, None)  # submitit: checkpoint, requeue, exit
        raise SystemExit(128 + self.signum)
