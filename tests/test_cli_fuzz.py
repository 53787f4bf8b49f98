"""Property-based: random --set strings never reach a traceback, never write output."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrbench import cli

KEYS = ["lr", "epochs", "batch_size", "seeds", "dataset", "task", "optimizer", "schedule", "impl", "dtype",
        "hidden", "momentum", "gamma", "unit", "target_acc", "bogus", ""]  # fmt: skip
NASTY = ["0", "-1", "1e999", "nan", "inf", "-inf", "", ",", "1,,2", "abc", "1e-400", "0x10", "5000",
         "sgd,", "☃", "'", "\\", " ", "1 2", "True"]  # fmt: skip

values = st.one_of(st.sampled_from(NASTY), st.text(string.printable, max_size=12))
items = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), values),
    st.text(string.printable, max_size=15),  # no '=' at all, or several
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(items, min_size=1, max_size=3))
def test_random_sets_never_traceback(tmp_path, capsys, sets):
    out = tmp_path / "out"
    argv = [
        "run",
        "--out",
        str(out),
        "--seeds",
        "0",
    ]  # applied last and always bad: exit 2 guaranteed
    for item in sets:
        argv += ["--set", item]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("lrbench: error: "), err
    assert "Traceback" not in err
    assert not out.exists()
