"""What a run says on stderr: the plan, then compiling apart from training (each program's
line, or one counted bar for many), the training bar whose rate counts training alone, and a
closing line whose numbers are meta.json's; nothing when quiet; no carriage returns off a
terminal."""

from __future__ import annotations

import io
import json
import re
import time

import pytest

from lrbench import engine, runner
from lrbench import progress as shown
from lrbench.sweep import Sweep

# blobs_lr's program (as tests/test_files.py and tests/test_plan.py train it): 2 runs of 2
# epochs of ceil(500 / 32) = 16 steps
TINY = Sweep(experiment="test", dataset="blobs", epochs=2, lrs=(0.1, 0.01), seeds=(0,))
STEPS = 2 * 16
NUMBER = r"([\d,]+(?:\.\d+)?(?:e[-+]\d+)?)"
CLOSING = re.compile(
    rf"done: (\d+) runs? in {NUMBER} s \({NUMBER} s compiling (\d+) programs?, {NUMBER} s "
    rf"training\): {NUMBER} runs/s, {NUMBER} model-steps/s"
)


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _training_rate(err: str) -> float:
    """The training bar's last rate (runs/s), in this module's words or tqdm's (``run/s``,
    or ``s/run`` under one run a second)."""
    rates = re.findall(rf"training[^\n\r]*?{NUMBER} ?(runs?/s|s/run)", err)
    assert rates, err
    value, unit = rates[-1]
    return 1 / _num(value) if unit == "s/run" else _num(value)


def test_a_run_says_its_plan_compile_training_and_closing_line_in_order(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(shown, "LINE_SECONDS", 1e9)  # no line while it trains: the last only
    monkeypatch.setattr(engine, "_COMPILED", {})  # compiled here, even after another test
    result = runner.run(TINY, out=tmp_path / "o")
    err = capsys.readouterr().err
    assert "\r" not in err  # not a terminal: plain lines, no redraws
    lines = err.strip().splitlines()
    assert lines[0].startswith(
        "plan: 2 runs of 32 steps to train in 1 chunk, 1 program to compile; about "
    ), lines
    compiled = [k for k, line in enumerate(lines) if line.startswith("compiled ")]
    training = [k for k, line in enumerate(lines) if line.startswith("training ")]
    closing = [k for k, line in enumerate(lines) if CLOSING.fullmatch(line)]
    assert len(compiled) == 1 and len(training) == 1 and len(closing) == 1, lines
    assert compiled[0] < training[0] < closing[0], lines
    name = re.fullmatch(rf"compiled (.+) in {NUMBER} s", lines[compiled[0]])
    assert name and name.group(1) == "blobs mlp(50)-relu sgd float32", lines[compiled[0]]
    assert re.fullmatch(r"training 2/2 runs 100% \[\d\d:\d\d, .+ runs/s\]", lines[training[0]])

    meta = json.loads((result.folder / "meta.json").read_text())
    runs, wall, compile_s, programs, train_s, per_run, per_step = CLOSING.fullmatch(
        lines[closing[0]]
    ).groups()
    assert int(runs) == meta["trained_runs"] == 2 and int(programs) == meta["programs"] == 1
    assert _num(name.group(2)) == pytest.approx(meta["compile_seconds"], rel=0.01, abs=0.051)
    assert _num(compile_s) == pytest.approx(meta["compile_seconds"], rel=0.01, abs=0.051)
    assert _num(train_s) == pytest.approx(meta["train_seconds"], rel=0.01, abs=0.051)
    assert meta["compile_seconds"] + meta["train_seconds"] <= _num(wall) + 0.051
    assert _num(wall) <= meta["wall_seconds"]
    assert _num(per_run) == pytest.approx(2 / meta["train_seconds"], rel=0.01)
    assert _num(per_step) == pytest.approx(2 * STEPS / meta["train_seconds"], rel=0.01)


def test_the_training_rate_leaves_out_compile_time(monkeypatch, capsys):
    """A compile made 1.5 s slower: the bar's rate is the runs over the training seconds, not
    over the compile and training seconds."""
    real = engine.compiled
    slow = 1.5

    def slow_compile(*args, **kwargs):
        time.sleep(slow)
        exe, seconds = real(*args, **kwargs)
        return exe, seconds + slow

    monkeypatch.setattr(engine, "compiled", slow_compile)
    _, _, timing = runner.train(TINY, runner.Progress())
    err = capsys.readouterr().err
    assert timing["compile_seconds"] >= slow
    training_only = timing["trained_runs"] / timing["train_seconds"]
    with_compile = timing["trained_runs"] / (timing["train_seconds"] + timing["compile_seconds"])
    assert training_only > 4 * with_compile  # the test tells the two apart
    bar_rate = _training_rate(err)
    # the bar's clock also counts the bookkeeping between chunks: a little slower
    assert 0.5 * training_only <= bar_rate <= 1.01 * training_only, (bar_rate, err)


def test_many_programs_compile_under_one_counted_bar_and_quiet_says_nothing(monkeypatch, capsys):
    """More than ``FEW_PROGRAMS`` programs give one counted line, not a line per program
    (``FEW_PROGRAMS`` lowered to 0 here, so that TINY's one program, compiled by other tests
    already, stands for many; 60 are counted in the tests below)."""
    monkeypatch.setattr(shown, "FEW_PROGRAMS", 0)
    monkeypatch.setattr(shown, "LINE_SECONDS", 1e9)  # no line while it trains: the last only
    _, _, timing = runner.train(TINY, runner.Progress())
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.strip().splitlines()
    assert timing["programs"] == 1
    compiling = [line for line in lines if line.startswith(("compiling", "compiled"))]
    assert len(compiling) == 1 and re.fullmatch(
        r"compiling 1/1 programs in \d\d:\d\d", compiling[0]
    ), lines
    assert lines[0].startswith("plan: 2 runs of 32 steps to train in 1 chunk, 1 program")
    assert CLOSING.fullmatch(lines[-1]) and "compiling 1 program" in lines[-1], lines

    runner.train(TINY, runner.Progress(quiet=True))
    assert capsys.readouterr().err == ""


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _drive(progress: shown.Progress, clock: _Clock, programs: int) -> list[tuple[str, str]]:
    """A fake training call: each program compiles for 10 s, then trains 4 runs in 2 s;
    returns the training line (terminal, plain) at each step."""
    phases = shown.Training(progress, programs=programs, runs=4 * programs, chunks=programs,
                            steps=[100], seconds=60.0, now=clock)  # fmt: skip
    states = []

    def render():  # what the ticking thread draws at any moment, in both modes
        states.append((phases.text(True), phases.text(False)))

    for k in range(programs):
        render()
        phases.compiling(f"program {k}")
        clock.t += 5
        render()
        clock.t += 5
        phases.compiled(f"program {k}", 10.0)
        render()
        clock.t += 2
        render()
        phases.trained(4)
        render()
    phases.finish(10.0 * programs, 2.0 * programs, 400 * programs)
    return states


def test_off_a_terminal_live_lines_are_plain_and_at_most_every_line_seconds():
    out, clock = io.StringIO(), _Clock()
    _drive(shown.Progress(file=out, tty=False), clock, programs=60)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    # 60 programs over 720 s of the fake clock: a line at most every 30 s per live line,
    # never a line per program
    assert len(lines) <= 2 + 2 * 720 / shown.LINE_SECONDS + 2, lines
    assert not any(line.startswith("compiled program") for line in lines)
    assert "compiling 60/60 programs in 10:00" in lines  # the compile clock alone
    assert "training 240/240 runs 100% [02:00, 2 runs/s]" in lines  # the training clock alone
    assert lines[-1] == (
        "done: 240 runs in 720.0 s (600.0 s compiling 60 programs, 120.0 s training): "
        "2 runs/s, 200 model-steps/s"
    )
    counted = [line for line in lines if re.match(r"compiling \d+/60 programs \[", line)]
    assert 2 <= len(counted) <= 720 / shown.LINE_SECONDS, lines


def test_on_a_terminal_lines_redraw_in_place_and_few_programs_get_a_line_each():
    out, clock = io.StringIO(), _Clock()
    _drive(shown.Progress(file=out, tty=True), clock, programs=2)
    text = out.getvalue()
    assert "\r" in text  # redrawn in place (tqdm)
    final = [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]
    assert "compiled program 0 in 10.0 s" in final and "compiled program 1 in 10.0 s" in final
    assert final.index("compiled program 0 in 10.0 s") < final.index("compiled program 1 in 10.0 s")
    assert "training 8/8 runs 100% [00:04, 2 runs/s]" in final
    assert final[-1].startswith("done: 8 runs in 24.0 s (20.0 s compiling 2 programs")


def test_quiet_says_nothing_even_on_a_terminal():
    out, clock = io.StringIO(), _Clock()
    _drive(shown.Progress(quiet=True, file=out, tty=True), clock, programs=60)
    assert out.getvalue() == ""


def test_program_names_tell_programs_apart():
    a = engine.Static(task=TINY.task_spec, optimizer="adam", impl="hand", epochs=2, batch_size=32)
    names = shown.program_names(
        [a, a._replace(impl="optax"), a._replace(impl="optax", dtype="float64")]
    )
    assert names == [
        "blobs mlp(50)-relu adam hand float32",
        "blobs mlp(50)-relu adam optax float32",
        "blobs mlp(50)-relu adam optax float64",
    ]
    assert shown.program_names([a]) == ["blobs mlp(50)-relu adam float32"]


def test_the_training_line_reads_well_at_every_step():
    states = _drive(shown.Progress(file=io.StringIO(), tty=False), _Clock(), programs=2)
    tty, plain = zip(*states, strict=True)
    assert plain[:5] == (
        "training 0/8 runs 0% [00:00 < ?, ? runs/s]",
        "compiling program 0 [00:05]",
        "training 0/8 runs 0% [00:00 < ?, ? runs/s]",
        "training 0/8 runs 0% [00:02 < ?, ? runs/s]",
        "training 4/8 runs 50% [00:02 < 00:02, 2 runs/s]",
    )
    assert re.fullmatch(r"compiling program 1 . 00:05", tty[6])  # a spinner on a terminal
    assert tty[-1] == "training 8/8 runs " + "█" * 20 + " 100% [00:04, 2 runs/s]"


def test_an_experiment_counts_its_own_steps_under_one_line():
    """``Progress.counter``: an experiment that compiles and trains in its own loop (e.g.
    twin_audit's 60 rule × dtype pairs) shows one counted line, not a line per pair."""
    out, clock = io.StringIO(), _Clock()
    count = shown.Counter(shown.Progress(file=out, tty=False), 60, "programs", "auditing", clock)
    for k in range(60):
        count.start(f"rule {k}")
        clock.t += 5
        count.advance()
    count.close()
    lines = out.getvalue().splitlines()
    assert len(lines) <= 300 / shown.LINE_SECONDS + 1, lines
    assert lines[-1] == "auditing 60/60 programs in 05:00"
    assert all(
        re.fullmatch(r"auditing \d+/60 programs \[\d\d:\d\d < \d\d:\d\d\]", x) for x in lines[:-1]
    )


def test_a_training_call_that_raises_takes_its_live_lines_down():
    """No drawing thread left behind to scribble over the error line."""
    progress = shown.Progress(file=io.StringIO(), tty=True)
    phases = shown.Training(progress, programs=5, runs=8, chunks=2)
    with pytest.raises(KeyboardInterrupt), phases:
        phases.compiling("program 0")
        raise KeyboardInterrupt
    threads = [phases.live.thread, phases.compile_count.live.thread]
    assert not any(t.is_alive() for t in threads) and progress._live == []
