"""Progress of the session's observations on pytest's terminal, for long runs.

A run observes everything once, inside the fixture setup of the first check
that asks (every zone on every server, every account's logins...): at
hosting scale that is a silent minute. Each observation stage shows one line
with its counts and elapsed time, rewritten in place on a terminal and as
plain lines otherwise:

    cutover: DNS: 400 zones on 2 servers: 1234/2400 questions, 0.8 s

Shown on a terminal or with `-v`, never with `-q`, never by pytest-xdist
workers (their output would garble the controller's), and never into JUnit
(written past pytest's capture). The engines in `cutover/` only call the
stage with (done, total).

>>> stage = display.stage("DNS: 400 zones on 2 servers", "questions")  # doctest: +SKIP
>>> observe_zones(zones, ..., progress=stage)                           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

import pytest

__all__ = ["ProgressDisplay", "Stage", "progress_line"]

# On a terminal the line is rewritten at most this often; plain lines come this far apart.
REWRITE_EVERY = 0.1
PLAIN_EVERY = 5.0


def progress_line(label: str, unit: str, done: int, total: int, elapsed: float) -> str:
    """One stage's line.

    >>> progress_line("IMAP: 50 accounts x 2 sides", "sessions", 12, 100, 1.234)
    'cutover: IMAP: 50 accounts x 2 sides: 12/100 sessions, 1.2 s'
    """
    return f"cutover: {label}: {done}/{total} {unit}, {elapsed:.1f} s"


class Writer(Protocol):
    """What is used of pytest's terminal writer (`config.get_terminal_writer()`)."""

    @property
    def fullwidth(self) -> int: ...
    @property
    def width_of_current_line(self) -> int: ...
    def write(self, msg: str, *, flush: bool = False, **markup: bool) -> None: ...


class ProgressDisplay:
    """Writes the stages' lines to the terminal.

    `writer` is None when nothing may be shown: every stage is then silent.
    `wrote(final)` is told after each line: it hands the terminal back to
    pytest (whose next result must not land on our line).
    """

    def __init__(
        self,
        writer: Writer | None,
        *,
        in_place: bool,
        wrote: Callable[[bool], None] = lambda final: None,
        suspend_capture: Callable[[], contextlib.AbstractContextManager[Any]] = (
            contextlib.nullcontext
        ),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer = writer
        self.in_place = in_place
        self.clock = clock
        self._wrote = wrote
        self._suspend_capture = suspend_capture
        self._lock = threading.Lock()

    @classmethod
    def for_config(cls, config: pytest.Config) -> ProgressDisplay:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        verbosity = config.get_verbosity()
        in_place = bool(reporter is not None and reporter.isatty())
        shown = (
            reporter is not None
            and not hasattr(config, "workerinput")
            and verbosity >= 0
            and (in_place or verbosity > 0)
        )

        def wrote(final: bool) -> None:
            # pytest then starts its next line itself: -v writes the test's id
            # again with its outcome; the dots of the default view need their
            # file name back at the end of a stage.
            reporter.currentfspath = None
            current = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
            if final and verbosity <= 0 and current:
                reporter.write_fspath_result(current, "")

        return cls(
            config.get_terminal_writer() if shown else None,
            in_place=in_place,
            wrote=wrote,
            suspend_capture=(
                capture.global_and_fixture_disabled
                if capture is not None
                else contextlib.nullcontext
            ),
        )

    def stage(self, label: str, unit: str) -> Stage:
        return Stage(self, label, unit)

    def show(self, text: str, *, again: bool, final: bool) -> None:
        """A stage's line; `again` (on a terminal) rewrites the stage's previous one in place."""
        if self.writer is None:
            return
        with self._lock, self._suspend_capture():
            writer = self.writer
            if self.in_place:
                text = text[: writer.fullwidth - 1]
            if self.in_place and again:
                writer.write("\r" + text.ljust(writer.fullwidth - 1), flush=True)
            else:
                if writer.width_of_current_line:
                    writer.write("\n")
                writer.write(text, flush=True)
            self._wrote(final)


class Stage:
    """One observation stage: call it with (done, total); it ends when done reaches
    total, or, used as `with stage:`, when the block ends (for totals that grow)."""

    def __init__(self, display: ProgressDisplay, label: str, unit: str) -> None:
        self.display = display
        self.label = label
        self.unit = unit
        self.started: float | None = None
        self.done = 0
        self.total = 0
        self._managed = False
        self._shown_at = 0.0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = self.display.clock()
        self.done, self.total = done, total
        ends = done >= total and not self._managed
        if self.started is None:
            self.started = self._shown_at = now
            self._shown = False
            if not ends:
                self._show()
        if ends:
            self._finish()
        elif now - self._shown_at >= (REWRITE_EVERY if self.display.in_place else PLAIN_EVERY):
            self._shown_at = now
            self._show()

    def __enter__(self) -> Stage:
        self._managed = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._managed = False
        if self.started is not None:
            self._finish()

    def _finish(self) -> None:
        self._show(final=True)
        self.started = None

    def _show(self, *, final: bool = False) -> None:
        assert self.started is not None
        elapsed = self.display.clock() - self.started
        line = progress_line(self.label, self.unit, self.done, self.total, elapsed)
        self.display.show(line, again=self._shown, final=final)
        self._shown = True
