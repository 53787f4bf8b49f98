"""What a training run says on stderr: its plan, the compile phase, the training bar and one
closing line; nothing when quiet.

Compiling and training are shown apart, so that the training bar's rate and time left count
training alone (its clock stops while a program compiles):

- at most ``FEW_PROGRAMS`` programs: a line each once compiled,
  ``compiled blobs mlp(50)-relu sgd float32 in 3.1 s`` (on a terminal a spinner with the
  program's name and its elapsed time stands in while it compiles);
- more: one counted bar, ``compiling 12/60 programs``, its time spent and left, and the
  program now compiling.

Then ``training 340/1,440 runs 24% [00:12 < 00:38, 28.3 runs/s]`` and at the end one line:
the runs, the wall time split into compiling and training, runs/s and model-steps/s
(model-steps: runs × optimizer steps a run) per second of training.

On a terminal the live lines redraw in place (tqdm); anywhere else (a CI log, a pipe) a
live line is a plain line at most every ``LINE_SECONDS`` (while a long program compiles
too) and once at its end: no carriage returns. An experiment that compiles and trains in a
loop of its own counts it with :meth:`Progress.counter`.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Sequence

FEW_PROGRAMS = 3
"""Up to this many programs get a line each once compiled; more compile under one counted bar."""
LINE_SECONDS = 30.0
"""Off a terminal, a live line is printed at most this often (and once at its end)."""
TICK_SECONDS = 0.25
"""How often a thread looks at the live lines: redrawn on a terminal (the spinner, the
elapsed times), printed elsewhere once ``LINE_SECONDS`` have passed (a long compile too)."""
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Progress:
    """Lines and live progress on stderr (``sys.stderr`` at the time of writing, unless
    ``file``); silent when ``quiet``. ``tty`` (default: ``file.isatty()``) picks live lines
    redrawn in place over plain lines."""

    def __init__(self, quiet: bool = False, file=None, tty: bool | None = None):
        self.quiet = quiet
        self._file = file
        self._tty = tty
        self._live: list = []  # the tqdm lines on screen now

    @property
    def file(self):
        return self._file if self._file is not None else sys.stderr

    @property
    def tty(self) -> bool:
        if self._tty is not None:
            return self._tty
        isatty = getattr(self.file, "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # a closed stream
            return False

    def say(self, text: str) -> None:
        """One line (above any live lines on a terminal)."""
        if self.quiet:
            return
        if self._live:
            from tqdm import tqdm

            tqdm.write(text, file=self.file)
            self.file.flush()
        else:
            print(text, file=self.file, flush=True)

    def counter(self, total: int, unit: str, verb: str) -> Counter:
        """A counted live line, ``{verb} 12/60 {unit}``, for an experiment's own loop:
        ``start(item)`` before an item, ``advance()`` after it, ``close()`` at the end (or
        leave a ``with`` block), which says its last state once."""
        return Counter(self, total, unit, verb)

    def training(self, **plan) -> Training:
        """The compile and training phases of one training call (:class:`Training`)."""
        return Training(self, **plan)

    # -- live lines ------------------------------------------------------------------------

    def _open_line(self):
        """A line redrawn in place (a tqdm showing only its description), or None off a
        terminal."""
        if self.quiet or not self.tty:
            return None
        from tqdm import tqdm

        line = tqdm(
            total=None, bar_format="{desc}", file=self.file, leave=False, dynamic_ncols=True,
            position=len(self._live), mininterval=0,
        )  # fmt: skip
        self._live.append(line)
        return line

    def _close_line(self, line) -> None:
        if line is not None:
            line.close()
            self._live.remove(line)


def clock(seconds: float) -> str:
    """Seconds as ``mm:ss`` (``h:mm:ss`` past an hour), as tqdm writes them; ``?`` unknown."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    minutes, s = divmod(seconds, 60)
    hours, m = divmod(minutes, 60)
    return f"{hours:d}:{m:02d}:{s:02d}" if hours else f"{m:02d}:{s:02d}"


def rate(value: float) -> str:
    """A rate to three significant figures, thousands separated (``28.3``, ``5,120``)."""
    if not math.isfinite(value):
        return "?"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def secs(seconds: float) -> str:
    """Seconds to a tenth (``3.1 s``), to two significant figures under one (``0.021 s``)."""
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds:.2g} s"


def count(n: int, word: str) -> str:
    """``1 program``, ``2 programs``, ``1,440 runs``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def bar(fraction: float, width: int = 20) -> str:
    """A bar of block characters, ``fraction`` of ``width`` filled."""
    eighths = int(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else "")
    return text.ljust(width)


class _Clock:
    """Seconds that pass while running (``start``/``stop``), from a monotonic ``now``."""

    def __init__(self, now: Callable[[], float]):
        self.now, self.total, self.since = now, 0.0, None

    def start(self) -> None:
        if self.since is None:
            self.since = self.now()

    def stop(self) -> None:
        if self.since is not None:
            self.total += self.now() - self.since
            self.since = None

    def seconds(self) -> float:
        return self.total + (self.now() - self.since if self.since is not None else 0.0)


class _Live:
    """A live line: redrawn in place on a terminal, else printed as a plain line at most every
    ``LINE_SECONDS`` until ``finished()`` (its last state is said on closing); a thread looks every ``TICK_SECONDS``, so that elapsed times move (and
    a long compile is said) while nothing else happens. ``text(tty)`` makes the line."""

    def __init__(
        self, progress: Progress, text: Callable[[bool], str], finished, now=time.monotonic
    ):
        self.progress, self.text, self.finished, self.now = progress, text, finished, now
        self.line = progress._open_line()
        self.lock = threading.Lock()
        self.printed = now()
        self.stopping = threading.Event()
        self.thread = None
        if not progress.quiet:  # off a terminal too: a long compile still says it goes on
            self.thread = threading.Thread(target=self._tick, daemon=True)
            self.thread.start()

    def _tick(self) -> None:
        while not self.stopping.wait(TICK_SECONDS):
            try:
                self.show()
            except Exception:  # never a thread's traceback on stderr: the caller's next
                return  # show() (same text) raises it where it can be seen

    def show(self) -> None:
        if self.progress.quiet:
            return
        with self.lock:
            if self.line is not None:
                self.line.set_description_str(self.text(True), refresh=True)
            elif not self.finished() and self.now() - self.printed >= LINE_SECONDS:
                self.printed = self.now()
                print(self.text(False), file=self.progress.file, flush=True)

    def stop(self) -> None:
        """Takes the live line off the screen."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
        with self.lock:
            self.progress._close_line(self.line)
            self.line = None

    def close(self, final: str) -> None:
        """Takes the live line off the screen and says ``final`` as a plain line."""
        self.stop()
        self.progress.say(final)


class Counter:
    """``{verb} 12/60 {unit} ███▌ [00:41 < 02:45] now: <item>`` (see :meth:`Progress.counter`).
    Its elapsed and left times count from its making, less the pauses (:meth:`pause` to the
    next :meth:`start`)."""

    def __init__(self, progress: Progress, total: int, unit: str, verb: str, now=time.monotonic):
        self.progress, self.total, self.unit, self.verb = progress, total, unit, verb
        self.n, self.now_doing = 0, ""
        self.clock = _Clock(now)
        self.clock.start()
        self.spin = 0
        self.live = _Live(progress, self.text, lambda: self.n >= self.total, now)

    def text(self, tty: bool) -> str:
        seconds = self.clock.seconds()
        left = seconds / self.n * (self.total - self.n) if self.n else math.nan
        times = f"[{clock(seconds)} < {clock(left)}]"
        done = f"{self.verb} {self.n:,}/{self.total:,} {self.unit}"
        now = f" now: {self.now_doing}" if self.now_doing and self.n < self.total else ""
        if tty:
            self.spin += 1
            spinner = f" {SPINNER[self.spin % len(SPINNER)]}" if now else ""
            return f"{done} {bar(self.n / max(self.total, 1))} {times}{now}{spinner}"
        return f"{done} {times}{now}"

    def start(self, item: str = "") -> None:
        """Says what is being worked on now; the clock runs."""
        self.now_doing = item
        self.clock.start()
        self.live.show()

    def pause(self) -> None:
        """Stops the clock until the next :meth:`start`."""
        self.clock.stop()

    def advance(self, n: int = 1, now: str = "") -> None:
        self.n += n
        self.now_doing = now
        self.live.show()

    def final(self) -> str:
        return f"{self.verb} {self.n:,}/{self.total:,} {self.unit} in {clock(self.clock.seconds())}"

    def close(self) -> None:
        self.clock.stop()
        self.live.close(self.final())

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Training:
    """The phases of one training call on stderr: the plan line, compiling each program,
    the training bar (its clock stopped while a program compiles) and the closing line.

    The caller says ``compiling(name)`` before a program compiles, ``compiled(name,
    seconds)`` after, ``trained(runs)`` after each chunk and ``finish(...)`` at the
    end, with the seconds it records (the closing line's numbers are the caller's)."""

    def __init__(
        self,
        progress: Progress,
        programs: int,
        runs: int,
        chunks: int,
        steps: Sequence[int] = (),
        resumed: int = 0,
        seconds: float | None = None,
        extra: str = "",
        now=time.monotonic,
    ):
        self.progress, self.programs, self.runs, self.resumed = progress, programs, runs, resumed
        self.now = now
        self.start = now()
        self.n = 0
        self.train_clock = _Clock(now)
        self.compile_start: float | None = None
        self.compiling_name = ""
        self.spin = 0
        self.many = programs > FEW_PROGRAMS
        if progress.quiet or runs == 0:
            self.compile_count = self.live = None
            if runs == 0 and resumed:
                progress.say(f"nothing to train: all {count(resumed, 'run')} already finished")
            return
        steps = sorted(set(steps))
        length = ""
        if steps:
            length = f" of {steps[0]:,}" + (f" to {steps[-1]:,}" if len(steps) > 1 else "")
            length += " steps"
        also = f" ({count(resumed, 'finished run')} read back)" if resumed else ""
        eta = f"; about {_duration(seconds)} (rough)" if seconds is not None else ""
        progress.say(
            f"plan: {count(runs, 'run')}{length} to train in {count(chunks, 'chunk')}, "
            f"{count(programs, 'program')} to compile{also}{eta}{extra}"
        )
        self.compile_count = (
            Counter(progress, programs, "programs", "compiling", now) if self.many else None
        )
        if self.compile_count is not None:
            self.compile_count.pause()
        self.live = _Live(progress, self.text, lambda: self.n >= self.runs, now)

    # -- what the caller says ----------------------------------------------------------------

    def compiling(self, name: str) -> None:
        self.train_clock.stop()
        self.compile_start, self.compiling_name = self.now(), name
        if self.compile_count is not None:
            self.compile_count.start(name)
        elif self.live is not None:
            self.live.show()

    def compiled(self, name: str, seconds: float) -> None:
        self.compile_start = None
        if self.compile_count is not None:
            self.compile_count.advance(now="")
            self.compile_count.pause()
        elif self.live is not None:
            self.live.show()  # the training line, not the spinner, redrawn under the line
            done = f"in {secs(seconds)}" if seconds else "earlier in this process"
            self.progress.say(f"compiled {name} {done}")
        self.train_clock.start()

    def trained(self, runs: int) -> None:
        self.n += runs
        if self.live is not None:
            self.live.show()

    def finish(self, compile_seconds: float, train_seconds: float, model_steps: int) -> None:
        """Closes the live lines and says the closing line (the caller's numbers)."""
        self.train_clock.stop()
        if self.live is None:
            return
        # Off the screen from the lowest line up (tqdm leaves the cursor mid-line after
        # clearing a line below the first), then their last states in order.
        self.live.stop()
        if self.compile_count is not None:
            self.compile_count.clock.stop()
            self.compile_count.live.stop()
            self.progress.say(self.compile_count.final())
        self.progress.say(self.text(False))
        wall = self.now() - self.start
        per_s = 1 / train_seconds if train_seconds > 0 else math.nan
        self.progress.say(
            f"done: {count(self.n, 'run')} in {secs(wall)} "
            f"({secs(compile_seconds)} compiling {count(self.programs, 'program')}, "
            f"{secs(train_seconds)} training): {rate(self.n * per_s)} runs/s, "
            f"{rate(model_steps * per_s)} model-steps/s"
        )

    def stop(self) -> None:
        """Takes the live lines off the screen, saying nothing (a training call that raised)."""
        for live in (self.live, self.compile_count and self.compile_count.live):
            if live is not None:
                live.stop()

    def __enter__(self) -> Training:
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is not None:
            self.stop()

    # -- the training line ---------------------------------------------------------------------

    def text(self, tty: bool) -> str:
        if self.compile_start is not None and self.compile_count is None:
            self.spin += 1
            seconds = clock(self.now() - self.compile_start)
            if tty:
                return (
                    f"compiling {self.compiling_name} {SPINNER[self.spin % len(SPINNER)]} {seconds}"
                )
            return f"compiling {self.compiling_name} [{seconds}]"
        seconds = self.train_clock.seconds()
        speed = self.n / seconds if self.n and seconds > 0 else math.nan
        done = self.resumed + self.n
        total = self.resumed + self.runs
        left = (self.runs - self.n) / speed if self.n else math.nan
        when = clock(seconds) + (f" < {clock(left)}" if self.n < self.runs else "")
        shown = f"[{when}, {rate(speed)} runs/s]"
        head = f"training {done:,}/{total:,} runs"
        percent = f"{done / total:4.0%}"
        if tty:
            return f"{head} {bar(done / total)} {percent} {shown}"
        return f"{head} {percent.strip()} {shown}"


def _duration(seconds: float) -> str:
    from lrbench import plan

    return plan.duration(seconds)


def program_names(statics: Sequence) -> list[str]:
    """A short name for each program (:class:`lrbench.engine.Static`) of a training call: its
    data set, model, optimizer and dtype, then what else tells it from the others (impl,
    schedule twin, epochs, batch size, ...) or differs from the default."""
    defaults = {"impl": "hand", "schedule": "", "plateau": ""}
    rows = [
        {
            "dataset": s.task.dataset,
            "model": s.task.label,
            "optimizer": s.optimizer,
            "impl": s.impl,
            "schedule": "optax schedule" if s.schedule_impl == "optax" else "",
            "plateau": f"plateau {s.plateau_twin}" if s.plateau_twin else "",
            "dtype": s.dtype,
            "epochs": f"{s.epochs} epochs",
            "batch": f"batch {s.batch_size}",
            "validation": f"test every {s.validation_freq} epochs",
        }
        for s in statics
    ]
    names = []
    for row in rows:
        parts = [
            value
            for key, value in row.items()
            if value
            and (
                key in ("dataset", "model", "optimizer", "dtype")
                or len({r[key] for r in rows}) > 1
                or (key in defaults and value != defaults[key])
            )
        ]
        names.append(" ".join(parts))
    seen: dict[str, int] = {}
    for k, name in enumerate(names):  # programs alike in all of the above: numbered
        seen[name] = seen.get(name, 0) + 1
        if names.count(name) > 1:
            names[k] = f"{name} #{seen[name]}"
    return names
