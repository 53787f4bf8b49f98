"""A researcher's files are safe: a rerun resumes a partial sweep of the same configuration and
refuses to throw away one of another (unless ``--overwrite``); an ``--out`` that cannot be
written is one line naming ``--out``; folders and files follow the user's umask; what a kill
left next to a results folder is removed by the next write."""

from __future__ import annotations

import contextlib
import os
import stat
import sys

import pytest

import experiments
from lrbench import cli, results, runner
from lrbench.errors import ConfigError

# 4 runs of 2 epochs, one chunk per device (the smallest chunk there is)
ARGS = ["run", "blobs_lr", "--set", "epochs=2", "--set", "lr=0.3,0.1,0.03,0.01", "--seeds", "1",
        "--max-memory", "1KB", "--quiet"]  # fmt: skip


def _sweep(lrs="0.3,0.1,0.03,0.01"):  # another lr list: another configuration, one program
    config = experiments.load("blobs_lr").get_config()
    return cli.apply_overrides(config, ["epochs=2", f"lr={lrs}"], 1)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _partial_with_a_chunk_missing(out, sweep) -> tuple[runner.ChunkStore, int]:
    """``<out>.partial`` as a kill after all but the last chunk leaves it; returns the store
    and the runs it holds."""
    store = runner.ChunkStore(runner.partial_dir(out))
    chunk = store.open(sweep, runner.max_chunk_for(sweep, 1), fresh=True)
    runner.train(sweep, max_chunk=chunk, store=store)
    chunks = sorted(store.folder.glob("chunk-*.npz"))
    assert len(chunks) >= 2
    chunks[-1].unlink()
    return store, len(store.load())


# ---------------------------------------------------------------------------------------------
# A rerun never deletes finished chunks unasked


def test_a_rerun_resumes_a_partial_sweep_of_the_same_configuration(tmp_path, capsys):
    out = tmp_path / "o"
    sweep = _sweep()
    _, held = _partial_with_a_chunk_missing(out, sweep)
    capsys.readouterr()
    result = runner.run(sweep, out=out, max_chunk=runner.max_chunk_for(sweep, 1))
    assert result.meta["resumed_runs"] == held and result.meta["trained_runs"] == 4 - held
    err = capsys.readouterr().err
    assert f"resuming: {runner.partial_dir(out)} holds {held} finished run(s)" in err
    assert not runner.partial_dir(out).exists()


def test_a_rerun_refuses_to_discard_another_configuration(tmp_path, capsys):
    out = tmp_path / "o"
    store, held = _partial_with_a_chunk_missing(out, _sweep("1,0.3,0.1,0.03"))
    before = sorted(p.name for p in store.folder.iterdir())
    assert cli.main([*ARGS, "--out", str(out)]) == 2
    line = _one_line(capsys)
    assert line.startswith("lrbench: error: --out: ")
    assert "--resume" in line and "--overwrite" in line and f"{held} finished run(s)" in line
    assert sorted(p.name for p in store.folder.iterdir()) == before  # nothing deleted
    assert not out.exists()
    with pytest.raises(ConfigError, match="different configuration") as err:
        runner.run(_sweep(), out=out, quiet=True)
    assert err.value.field == "out"


def test_overwrite_discards_the_partial_sweep(tmp_path, capsys):
    out = tmp_path / "o"
    _partial_with_a_chunk_missing(out, _sweep("1,0.3,0.1,0.03"))
    assert cli.main([*ARGS, "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()
    assert (out / "curves.csv").is_file() and not runner.partial_dir(out).exists()
    _partial_with_a_chunk_missing(out, _sweep())  # the same configuration: trained again too
    result = runner.run(_sweep(), out=out, quiet=True, overwrite=True)
    assert result.meta["resumed_runs"] == 0 and result.meta["trained_runs"] == 4


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    assert cli.main([*ARGS, "--out", str(tmp_path / "o"), "--resume", "--overwrite"]) == 2
    line = _one_line(capsys)
    assert "--overwrite" in line and "--resume" in line
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# --out that cannot be written


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_an_out_that_cannot_be_written_is_one_line_naming_out(tmp_path, capsys, where):
    if where == "proc" and not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "x" if where == "under-a-file" else "/proc/lrbench-test/x"
    assert cli.main([*ARGS, "--out", str(out)]) == 2
    line = _one_line(capsys)
    assert line.startswith("lrbench: error: --out: ") and "partial" not in line, line
    assert "internal error" not in line
    with pytest.raises(ConfigError) as err:
        runner.run(_sweep(), out=out, quiet=True)
    assert err.value.field == "out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# ---------------------------------------------------------------------------------------------
# Modes follow the umask


@contextlib.contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_folders_and_files_follow_the_umask(tmp_path, mask):
    with _umask(mask):
        out = results.write_atomically(tmp_path / "r", lambda d: (d / "a.csv").write_text("a"))
        path = results.write_file_atomically(tmp_path / "f.npz", lambda f: f.write(b"x"))
    assert _mode(out) == 0o777 & ~mask
    assert _mode(out / "a.csv") == 0o666 & ~mask
    assert _mode(path) == 0o666 & ~mask


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_a_results_folder_and_its_chunks_follow_the_umask(tmp_path):
    out = tmp_path / "o"
    sweep = _sweep()
    with _umask(0o022):
        store, _ = _partial_with_a_chunk_missing(out, sweep)
        modes = {p.name: _mode(p) for p in store.folder.iterdir()}
        runner.run(sweep, out=out, quiet=True, max_chunk=runner.max_chunk_for(sweep, 1))
    assert set(modes.values()) == {0o644}, modes  # sweep.json and the chunks
    assert _mode(out) == 0o755
    assert {_mode(p) for p in out.iterdir()} == {0o644}


# ---------------------------------------------------------------------------------------------
# What a kill during the final write left


def test_the_next_write_removes_what_a_killed_write_left(tmp_path):
    stale = tmp_path / ".late.k3x_9q2a"  # tempfile.mkdtemp's name for a write of `late`
    stale.mkdir()
    (stale / "curves.csv").write_text("run_id,epoch,lr\nab")  # cut short
    (tmp_path / ".late.old").mkdir()  # the previous folder, moved aside...
    (tmp_path / "late").mkdir()  # ...and the new one already in place
    others = [".late.too-long-a-name", ".later.k3x_9q2a", "late2"]  # not the write's own
    for name in others:
        (tmp_path / name).mkdir()
    results.write_atomically(tmp_path / "late", lambda d: (d / "x").write_text("x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["late", *others])
    assert [p.name for p in (tmp_path / "late").iterdir()] == ["x"]


def test_a_kill_between_the_renames_gives_the_old_folder_back(tmp_path):
    """Killed after moving the old folder aside, before the new one was renamed into place:
    the old folder goes back to its name (the chunks are still there to write the new one)."""
    (tmp_path / ".late.old").mkdir()
    (tmp_path / ".late.old" / "runs.csv").write_text("old")
    (tmp_path / ".late.k3x_9q2a").mkdir()
    results.clean_stale(tmp_path / "late")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late"]
    assert (tmp_path / "late" / "runs.csv").read_text() == "old"


def test_a_store_removes_the_temporaries_of_killed_chunk_writes(tmp_path):
    """Alone, a process removes every ``.tmp`` a killed write left in the store; sharing it,
    only its own chunks' (another process may be writing its own right now)."""
    names = [".chunk-p00000-000-000000001.npz.ab12.tmp", ".chunk-p00001-000-000000001.npz.cd34.tmp",
             ".sweep.json.ef56.tmp"]  # fmt: skip
    for shared, kept in ((True, names[1:]), (False, [])):
        store = runner.ChunkStore(tmp_path / "o.partial", process=0)
        store.folder.mkdir(exist_ok=True)
        for name in names:
            (store.folder / name).write_bytes(b"half")
        store.open(_sweep(), 4, fresh=False, shared=shared)
        left = sorted(p.name for p in store.folder.iterdir() if p.name != "sweep.json")
        assert left == sorted(kept)
