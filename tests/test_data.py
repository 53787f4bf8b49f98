"""Data sets: the shipped and generated ones (shapes, classes, train-split standardization,
MNIST-1D's cache, the teacher-student closed form), names with parameters, and the user's own
files (.npz, .csv, .parquet): every malformed file is one line naming the file, and a changed
file is never resumed as the old one."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lrbench import cli, data, runner
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.sweep import Sweep, expand

SMALL_MNIST1D = "mnist1d(num_samples=200)"


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """The user's cache folder, for this test only."""
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    data._REGISTRY["mnist1d"].cache_clear()
    yield home
    data._REGISTRY["mnist1d"].cache_clear()


# ---------------------------------------------------------------------------------------------
# Shipped and generated sets


@pytest.mark.parametrize(
    "name, n, features, classes",
    [("wine", 178, 13, 3), ("breast_cancer", 569, 30, 2), ("diabetes", 442, 10, 0)],
)
def test_shipped_sets_shapes_classes_and_train_standardization(name, n, features, classes):
    ds = data.load(name)
    assert len(ds.x_train) + len(ds.x_test) == n
    assert len(ds.x_test) == round(0.25 * n)
    assert ds.num_features == features and ds.num_classes == classes
    assert ds.x_train.dtype == np.float32
    # standardized with the training split's own statistics: mean 0, std 1 there, not on test
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(0), 1, atol=1e-4)
    assert np.abs(ds.x_test.mean(0)).max() > 1e-3
    if classes:
        assert ds.y_train.dtype == np.int32
        assert set(np.unique(ds.y_train)) == set(range(classes))
    else:
        assert ds.y_train.dtype == np.float32
        np.testing.assert_allclose(ds.y_train.mean(), 0, atol=1e-5)


def test_diabetes_targets_are_standardized_from_the_training_split():
    from sklearn.datasets import load_diabetes

    raw = load_diabetes().target
    ds = data.load("diabetes")
    order = np.random.default_rng(0).permutation(len(raw))  # the shuffled split of seed 0
    train = raw[order[round(0.25 * len(raw)) :]]
    np.testing.assert_allclose(ds.y_train, (train - train.mean()) / train.std(), rtol=1e-5)


def test_teacher_student_is_the_closed_form():
    params = {"n_train": 30, "n_test": 7, "features": 4, "hidden": 5, "noise": 0.3, "seed": 11}
    ds = data.load("teacher_student(n_train=30,n_test=7,features=4,hidden=5,noise=0.3,seed=11)")
    rng = np.random.default_rng(11)  # the documented order of the draws
    w = rng.normal(size=(4, 5)) / 2.0
    b, a = rng.normal(size=5), rng.normal(size=5)
    x_train, x_test = rng.normal(size=(30, 4)), rng.normal(size=(7, 4))
    eps_train, eps_test = rng.normal(size=30), rng.normal(size=7)
    f = lambda x: np.tanh(x @ w + b) @ a / np.sqrt(5)  # noqa: E731
    np.testing.assert_allclose(ds.x_train, x_train, rtol=1e-6)
    np.testing.assert_allclose(ds.y_train, f(x_train) + 0.3 * eps_train, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.y_test, f(x_test) + 0.3 * eps_test, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data.teacher(params, x_test), f(x_test))
    assert ds.num_classes == 0
    assert data.load("teacher_student").x_train.shape == (1000, 20)


def test_mnist1d_defaults_match_the_package():
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    for key, value in data.MNIST1D_PARAMS.items():
        assert args[key] == value, key
    assert int(args["num_samples"] * args["train_split"]) == 4000  # 4000 train / 1000 test


def test_mnist1d_is_the_packages_generator_and_is_cached(cache_home):
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()[1].copy()  # noqa: NPY002
    ds = data.load(SMALL_MNIST1D)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    args = get_dataset_args()
    args.num_samples = 200
    ref = make_dataset(args)
    np.testing.assert_allclose(ds.x_train, ref["x"].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, ref["y_test"])
    assert ds.x_train.shape == (160, 40) and ds.num_classes == 10 and ds.name == SMALL_MNIST1D
    files = list((cache_home / "lrbench" / "data").glob("mnist1d-*.npz"))
    assert files == [data.mnist1d_cache_path(**{**data.MNIST1D_PARAMS, "num_samples": 200})]

    # a second load (a new process: the in-memory cache cleared) reads the file back
    data._REGISTRY["mnist1d"].cache_clear()
    with np.load(files[0]) as z:
        marked = {k: z[k] for k in z.files}
    marked["x_test"] = marked["x_test"] + 1.0  # a mark only a read of the file can show
    np.savez(files[0], **marked)
    np.testing.assert_allclose(data.load(SMALL_MNIST1D).x_test, ds.x_test + 1.0, atol=1e-6)

    # other arguments: another file
    other = data.load("mnist1d(num_samples=200,shuffle_seq=true)")
    assert len(list((cache_home / "lrbench" / "data").glob("mnist1d-*.npz"))) == 2
    assert not np.allclose(other.x_train, ds.x_train)


def test_mnist1d_damaged_cache_file_is_generated_again(cache_home):
    path = data.mnist1d_cache_path(**{**data.MNIST1D_PARAMS, "num_samples": 200})
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz")
    assert data.load(SMALL_MNIST1D).x_train.shape == (160, 40)
    with np.load(path) as z:
        assert z["x_train"].shape == (160, 40)


@pytest.mark.parametrize(
    "name, canonical",
    [
        ("mnist1d", "mnist1d"),
        ("mnist1d(num_samples=5000)", "mnist1d"),
        ("mnist1d( shuffle_seq = TRUE , num_samples=2000)", "mnist1d(num_samples=2000,shuffle_seq=true)"),
        ("teacher_student(seed=3,noise=0.5)", "teacher_student(noise=0.5,seed=3)"),
        ("d.csv(target=price,test_fraction=0.2)", "d.csv(target=price)"),
        ("iris", "iris"),
        ("nope", "nope"),
    ],
)  # fmt: skip
def test_canonical_names(name, canonical):
    assert data.canonical(name) == canonical


def test_a_sweep_keeps_the_canonical_name():
    assert (
        Sweep(dataset="mnist1d(shuffle_seq=true, seed=42)").dataset == "mnist1d(shuffle_seq=true)"
    )


@pytest.mark.parametrize(
    "name, says",
    [
        ("mnist1d(samples=10)", "unknown parameter 'samples' of 'mnist1d'; allowed: num_samples"),
        ("mnist1d(num_samples=ten)", "num_samples='ten' must be an integer"),
        ("mnist1d(shuffle_seq=yes)", "shuffle_seq='yes' must be true or false"),
        ("mnist1d(num_samples=10)", "num_samples=10 must be >= 20"),
        ("mnist1d(iid_noise_scale=-1)", "iid_noise_scale=-1.0 must be >= 0"),
        ("mnist1d(num_samples)", "'num_samples' is not key=value"),
        ("mnist1d(num_samples=2000", "is not a data set name"),
        ("iris(seed=1)", "unknown parameter 'seed' of 'iris'; allowed: none"),
        ("teacher_student(noise=nan)", "noise='nan' must be a finite number"),
        ("imagenet", "unknown data set 'imagenet'; allowed: blobs"),
    ],
)
def test_bad_names_are_one_line(name, says):
    with pytest.raises(ConfigError) as err:
        data.load(name)
    assert err.value.field == "dataset" and says in err.value.message
    assert "\n" not in err.value.message


def test_a_classifier_on_a_regression_set_is_refused():
    with pytest.raises(ConfigError, match="regression set.*task=regressor"):
        Sweep(dataset="diabetes", epochs=1).validate()
    Sweep(dataset="diabetes", task="regressor", epochs=1).validate()


# ---------------------------------------------------------------------------------------------
# Bring your own


def _xy(n=40, d=3, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, classes, n)


def test_npz_with_a_split(tmp_path):
    x, y = _xy()
    path = tmp_path / "s.npz"
    np.savez(path, x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    ds = data.load(str(path))
    np.testing.assert_allclose(ds.x_train, x[:30].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, y[30:])
    assert ds.num_classes == 3 and ds.name == str(path)


def test_npz_x_y_split_by_fraction_and_seed_and_standardized(tmp_path):
    x, y = _xy(n=50)
    path = tmp_path / "xy.npz"
    np.savez(path, x=x * 10 + 3, y=y)
    ds = data.load(f"{path}(test_fraction=0.3,seed=5,standardize=true)")
    order = np.random.default_rng(5).permutation(50)
    assert len(ds.x_test) == 15 and len(ds.x_train) == 35
    np.testing.assert_array_equal(ds.y_test, y[order[:15]])
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(0), 1, atol=1e-4)


def test_csv_and_parquet_with_a_named_target(tmp_path):
    x, y = _xy(n=20)
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(label=y)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for suffix in ("csv", "parquet"):
        ds = data.load(f"{tmp_path / ('t.' + suffix)}(target=label,test_fraction=0.25)")
        order = np.random.default_rng(0).permutation(20)
        np.testing.assert_allclose(ds.x_test, x[order[:5]].astype(np.float32))
        np.testing.assert_array_equal(ds.y_train, y[order[5:]])


def test_float_targets_make_a_regression_set(tmp_path):
    x, _ = _xy(n=20)
    pd.DataFrame(x).assign(target=np.linspace(0, 1, 20)).to_csv(tmp_path / "r.csv", index=False)
    ds = data.load(str(tmp_path / "r.csv"))
    assert ds.num_classes == 0 and ds.y_train.dtype == np.float32
    ints = tmp_path / "i.csv"
    pd.DataFrame(x).assign(target=np.arange(20)).to_csv(ints, index=False)
    assert data.load(f"{ints}(labels=values)").num_classes == 0
    assert data.load(str(ints)).num_classes == 20


def _bad_files(tmp_path):
    """(file name, how to write it, what the one line must say)."""
    x, y = _xy(n=10)
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(target=y)
    nan_x = x.copy()
    nan_x[3, 1] = np.nan
    words = frame.astype({"b": object})
    words.loc[2, "b"] = "red"
    return [
        ("missing.npz", None, "no such file"),
        ("keys.npz", lambda p: np.savez(p, a=x, b=y), "missing arrays"),
        ("text.npz", lambda p: p.write_text("hello"), "not a .npz archive"),
        ("len.npz", lambda p: np.savez(p, x=x, y=y[:-1]), "mismatched lengths: x has 10 rows, y 9"),
        ("feat.npz", lambda p: np.savez(p, x_train=x, y_train=y, x_test=x[:, :2], y_test=y),
         "mismatched features"),
        ("nan.npz", lambda p: np.savez(p, x=nan_x, y=y), "NaN or inf in the features x (row 4, column 2)"),
        ("inf.csv", lambda p: frame.assign(a=np.r_[np.inf, x[1:, 0]]).to_csv(p, index=False),
         "NaN or inf in the features x (row 1, column 1)"),
        ("str.npz", lambda p: np.savez(p, x=x.astype(str), y=y), "array 'x' is not numeric"),
        ("words.csv", lambda p: words.to_csv(p, index=False), "column 'b' is not numeric (e.g. 'red' in row 3)"),
        ("notarget.csv", lambda p: frame.drop(columns="target").to_csv(p, index=False),
         "no column 'target' (columns: a, b, c)"),
        ("empty.csv", lambda p: p.write_text(""), "empty file"),
        ("onlytarget.csv", lambda p: frame[["target"]].to_csv(p, index=False), "no feature column"),
        ("float.csv(labels=classes)", lambda p: frame.assign(target=y + 0.5).to_csv(p, index=False),
         "labels are not integers (e.g. "),
        ("neg.csv", lambda p: frame.assign(target=y - 1).to_csv(p, index=False),
         "labels must be class indices >= 0"),
        ("nosplit.npz(test_fraction=0.01)", lambda p: np.savez(p, x=x, y=y), "empty test split (10 rows"),
        ("notest.npz", lambda p: np.savez(p, x_train=x, y_train=y, x_test=x[:0], y_test=y[:0]),
         "empty split: x_test has no rows"),
        ("bad.parquet", lambda p: p.write_text("not parquet"), "cannot be read"),
    ]  # fmt: skip


def _write_bad(tmp_path, name, write):
    file = name.partition("(")[0]
    if write is not None:
        write(tmp_path / file)
    return str(tmp_path / file) + name[len(file) :]


def test_every_bad_file_is_one_line_naming_it(tmp_path):
    for name, write, says in _bad_files(tmp_path):
        dataset = _write_bad(tmp_path, name, write)
        with pytest.raises(ConfigError) as err:
            data.load(dataset)
        message = err.value.message
        assert err.value.field == "dataset", name
        assert repr(dataset.partition("(")[0]) in message, (name, message)
        assert says in message, (name, message)
        assert "\n" not in message, name


def test_a_classifier_refuses_float_labels_in_a_sweep(tmp_path):
    x, _ = _xy(n=20)
    pd.DataFrame(x).assign(target=np.linspace(0, 1, 20)).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ConfigError, match="regression set"):
        Sweep(dataset=str(tmp_path / "r.csv"), epochs=1, batch_size=4).validate()


@pytest.mark.parametrize(
    "case",
    [
        "words.csv",  # one subprocess in the fast tier; every other bad file is refused by the
        # same API call (tested above), so its command-line runs are in the slow tier
        pytest.param("keys.npz", marks=pytest.mark.slow),
        pytest.param("float.csv(labels=classes)", marks=pytest.mark.slow),
        pytest.param("missing.npz", marks=pytest.mark.slow),
    ],
)
def test_bad_files_through_the_cli_are_one_line_exit_2_nothing_written(tmp_path, case):
    bad = {name: (write, says) for name, write, says in _bad_files(tmp_path)}
    write, says = bad[case]
    dataset = _write_bad(tmp_path, case, write)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "lrbench", "run", "--set", f"dataset={dataset}", "--set",
         "epochs=1", "--seeds", "1", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("lrbench: error: dataset: ")
    assert says in lines[0] and repr(dataset.partition("(")[0]) in lines[0]
    assert not out.exists() and not runner.partial_dir(out).exists()


# ---------------------------------------------------------------------------------------------
# A file's content is part of the identity


def _file_sweep(path) -> Sweep:
    return Sweep(
        experiment="own", dataset=str(path), model=MLPConfig(hidden=(4,)), epochs=2,
        batch_size=8, lrs=(0.1, 0.03, 0.01), seeds=(0, 1),
    )  # fmt: skip


class Killed(Exception):
    pass


def test_a_changed_file_is_never_resumed_as_the_old_one(tmp_path, monkeypatch):
    x, y = _xy(n=40)
    path = tmp_path / "own.npz"
    np.savez(path, x=x, y=y)
    sweep = _file_sweep(path)
    out = tmp_path / "res"
    before = expand(sweep)["run_id"].tolist()

    append = runner.ChunkStore.append
    count = [0]

    def die_after_first(self, *args):
        append(self, *args)
        count[0] += 1
        if count[0] == 1:
            raise Killed

    monkeypatch.setattr(runner.ChunkStore, "append", die_after_first)
    with pytest.raises(Killed):
        runner.run(sweep, out, quiet=True, max_chunk=1)
    monkeypatch.setattr(runner.ChunkStore, "append", append)
    assert list(runner.partial_dir(out).glob("chunk-*.npz"))

    np.savez(path, x=x, y=(y + 1) % 3)  # the same name, other labels
    assert expand(sweep)["run_id"].tolist() != before  # new run_ids
    for resume in (False, True):
        with pytest.raises(ConfigError, match="different configuration"):
            runner.run(sweep, out, quiet=True, max_chunk=1, resume=resume)
    assert not out.exists()
    # discarding the old chunks trains on the new file; meta.json names its content
    result = runner.run(sweep, out, quiet=True, max_chunk=1, overwrite=True)
    meta = json.loads((out / "meta.json").read_text())
    sha = data.identity(str(path))["dataset_sha256"]
    assert meta["config"]["dataset_sha256"] == {str(path): sha}
    assert meta["datasets"][str(path)]["file_sha256"] == sha
    assert set(result.runs["run_id"]) == set(expand(sweep)["run_id"])


def test_a_changed_file_in_one_process_trains_on_the_new_arrays(tmp_path):
    x, y = _xy(n=40)
    path = tmp_path / "own.npz"
    np.savez(path, x=x, y=y)
    sweep = dataclasses.replace(_file_sweep(path), lrs=(0.1,), seeds=(0,))
    first = runner.run(sweep, quiet=True).runs
    np.savez(path, x=x[:24] * 3, y=y[:24])  # fewer rows: another shape as well
    second = runner.run(sweep, quiet=True).runs
    assert first["final_train_loss"].iloc[0] != second["final_train_loss"].iloc[0]
    assert first["run_id"].iloc[0] != second["run_id"].iloc[0]


def test_cli_runs_mnist1d(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "m"
    code = cli.main(["run", "--set", "dataset=mnist1d(num_samples=200,shuffle_seq=true)",
                     "--set", "epochs=2", "--set", "lr=0.1", "--seeds", "1", "--quiet",
                     "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    runs = pd.read_csv(out / "runs.csv")
    assert runs["dataset"].tolist() == ["mnist1d(num_samples=200,shuffle_seq=true)"]
    meta = json.loads((out / "meta.json").read_text())
    entry = meta["datasets"]["mnist1d(num_samples=200,shuffle_seq=true)"]
    assert entry["n_train"] == 160 and entry["features"] == 40 and entry["num_classes"] == 10


def test_meta_describes_the_data_each_task_trains_on():
    """A task with its own data under a shared name (the neuron's seeded line) is recorded
    with the hash of what it trained on, not of the shipped set of that name."""
    from lrbench import tasks

    sweep = Sweep(task=tasks.Neuron(data_seed=3), epochs=1, batch_size=10, lrs=(0.1,), seeds=(0,))
    meta = runner.run(sweep, quiet=True).meta
    seeded, shipped = data.noisy_line(3), data.load("line")
    h = __import__("hashlib").sha256()
    for a in (seeded.x_train, seeded.y_train, seeded.x_test, seeded.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())
    assert meta["datasets"] == {
        "line": {"n_train": 50, "n_test": 200, "features": 1, "num_classes": 0,
                 "sha256": h.hexdigest()}
    }  # fmt: skip
    assert h.hexdigest() != data.digest(shipped)
