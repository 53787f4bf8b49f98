"""deeplizard's drug-trial model at five learning rates (seed 002).

"Learning Rate in a Neural Network explained" (deeplizard, 2017) says a learning rate usually
lies between 0.01 and 0.0001: at the high end updates overshoot the minimum, at the low end
training takes much longer. Its Keras model is ``Dense(16, relu) -> Dense(32, relu,
kernel_regularizer=l2(0.01)) -> Dense(2, sigmoid)``, trained with Adam at lr 0.0001 on the
series' synthetic drug-trial data (``lrbench.data.drug_trial``: one feature, age, scaled to
[0, 1]; label = side effects). Here the same model (Keras' ``glorot_uniform`` kernels, zero
biases, sparse categorical cross-entropy on the sigmoid outputs, the L2 term in the loss),
Keras' Adam (``epsilon=1e-7``), batch 10 and 30 epochs as in the series, at lr 1e-1 ... 1e-5
with 10 seeds, all in one compiled program.

Measures per learning rate (mean ± std over seeds): final test accuracy, final training loss
(with the L2 term, as Keras reports it), epochs to 90% test accuracy, and ``loss_rises``: the
share of epochs (after the first) whose training loss is above the previous epoch's, the
suite's measure of overshooting. The best any classifier can reach is about 95.2% (5% of each
age group is atypical).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lrbench import diagnose, report, runner
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Sweep

NAME = "drug_trial"
MODEL = MLPConfig(
    hidden=(16, 32), activation="relu", kernel_init="glorot_uniform", output="sigmoid",
    kernel_l2=(0.0, 0.01, 0.0),
)  # fmt: skip
KERAS_ADAM = Optimizer("adam", {"eps": 1e-7})  # Keras' Adam: beta_1 0.9, beta_2 0.999, eps 1e-7
ARTICLE_RANGE = (1e-4, 1e-2)  # "usually ranging between 0.01 and 0.0001"
HIGH, LOW = 1e-1, 1e-5  # the ends of the sweep: one decade beyond each end of the range
GOOD_ACC = 0.93  # "works": within about 2 points of the best possible 95.2%
TARGET = 0.9


def get_config() -> Sweep:
    return Sweep(
        experiment=NAME,
        description="deeplizard drug trial: Adam at lr 1e-1 ... 1e-5, 10 seeds, 30 epochs",
        dataset="drug_trial",
        model=MODEL,
        epochs=30,
        batch_size=10,
        lrs=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5),
        optimizers=(KERAS_ADAM,),
        seeds=tuple(range(10)),
        target_acc=TARGET,
    )


def ci_config() -> Sweep:
    return dataclasses.replace(get_config(), seeds=(0, 1, 2))


def loss_rises(train_loss: np.ndarray) -> float:
    """Share of epochs (after the first) whose training loss is above the previous one's."""
    finite = train_loss[np.isfinite(train_loss)]
    return float(np.mean(np.diff(finite) > 0)) if len(finite) > 1 else float("nan")


def lr_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """One row per learning rate: the measures of the module docstring over seeds."""
    rises = curves.groupby("run_id")["train_loss"].apply(lambda s: loss_rises(s.to_numpy()))
    runs = runs.assign(loss_rises=runs["run_id"].map(rises))
    rows = []
    for lr, group in runs.groupby("lr", sort=False):
        reached = group["epochs_to_target"].dropna()
        rows.append(
            {
                "lr": lr,
                "test_acc_mean": group["final_test_acc"].mean(),
                "test_acc_std": group["final_test_acc"].std(ddof=0),
                "train_loss_mean": group["final_train_loss"].mean(),
                "train_loss_std": group["final_train_loss"].std(ddof=0),
                "epochs_to_90_median": reached.median() if len(reached) else np.nan,
                "reached_90": f"{len(reached)}/{len(group)}",
                "loss_rises_mean": group["loss_rises"].mean(),
                "status": group["status"].mode().iloc[0],
            }
        )
    return pd.DataFrame(rows).sort_values("lr", ascending=False).set_index("lr")


def claims_table(table: pd.DataFrame, epochs: int) -> pd.DataFrame:
    t = table
    inside = t.loc[[lr for lr in t.index if ARTICLE_RANGE[0] <= lr <= ARTICLE_RANGE[1]]]
    best_inside = inside["train_loss_mean"].min()
    high, low = t.loc[HIGH], t.loc[LOW]
    reached_low, seeds = (int(v) for v in low["reached_90"].split("/"))
    article = t.loc[1e-4]
    rows = [
        (
            "range_works",
            f"every lr in the article's range 0.0001–0.01 reaches {GOOD_ACC:.0%} test accuracy",
            ", ".join(f"{lr:g}: {a:.3f}" for lr, a in inside["test_acc_mean"].items()),
            bool((inside["test_acc_mean"] >= GOOD_ACC).all()),
        ),
        (
            "article_setting_learns",
            f"the article's own setting (Adam, lr 0.0001) learns the task (≥ {GOOD_ACC:.0%})",
            f"{article['test_acc_mean']:.3f} ± {article['test_acc_std']:.3f}",
            bool(article["test_acc_mean"] >= GOOD_ACC),
        ),
        (
            "high_end_overshoots",
            f"high end (lr {HIGH:g}) overshoots: training loss rises more often and ends "
            "higher than the best lr of the range",
            f"loss rises {high['loss_rises_mean']:.2f} vs ≤ {inside['loss_rises_mean'].max():.2f}; "
            f"final loss {high['train_loss_mean']:.3f} vs {best_inside:.3f}",
            bool(
                high["loss_rises_mean"] > inside["loss_rises_mean"].max()
                and high["train_loss_mean"] > best_inside
            ),
        ),
        (
            "low_end_crawls",
            f"low end (lr {LOW:g}) learns slowly: most seeds below {TARGET:.0%} test accuracy "
            f"after {epochs} epochs, final loss over 1.5× the range's best",
            f"{low['reached_90']} seeds reached {TARGET:.0%}; final loss "
            f"{low['train_loss_mean']:.3f} vs {best_inside:.3f}",
            bool(2 * reached_low < seeds and low["train_loss_mean"] > 1.5 * best_inside),
        ),
    ]
    return pd.DataFrame(rows, columns=["claim", "text", "value", "held"]).set_index("claim")


def loss_figure(runs: pd.DataFrame, curves: pd.DataFrame, path: Path) -> None:
    """Training loss and test accuracy per epoch, mean over seeds with a min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    merged = curves.drop(columns="lr").merge(runs[["run_id", "lr"]], on="run_id")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for lr, group in sorted(merged.groupby("lr"), key=lambda kv: -kv[0]):
        for ax, metric in zip(axes, ("train_loss", "test_acc"), strict=True):
            by_epoch = group.groupby("epoch")[metric]
            mean = by_epoch.mean()
            line = ax.plot(mean.index, mean.to_numpy(), label=f"lr {lr:g}")[0]
            ax.fill_between(
                mean.index, by_epoch.min(), by_epoch.max(), color=line.get_color(), alpha=0.2
            )
    axes[0].set(xlabel="epoch", ylabel="training loss (with L2)", yscale="log", title="loss")
    axes[1].set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
    axes[1].axhline(0.952, color="gray", ls=":", lw=1)
    axes[1].legend(title="Adam", fontsize=8)
    fig.suptitle("deeplizard drug trial: Dense(16) → Dense(32, L2 0.01) → Dense(2, sigmoid)")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    progress = runner.Progress(quiet)
    start = time.perf_counter()
    result = runner.run(sweep, out=None, quiet=quiet)
    table = lr_table(result.runs, result.curves)
    tables = {"learning_rates": report.rounded(table), "claims": claims_table(table, sweep.epochs)}
    meta = {**result.meta, "wall_seconds": round(time.perf_counter() - start, 3)}

    def write(folder: Path) -> None:
        runner.write(folder, sweep, result.runs, result.curves, meta)
        report.write_table(
            folder, "learning_rates", tables["learning_rates"],
            f"Drug trial, Adam: final test accuracy, training loss, epochs to {TARGET:.0%} and "
            f"share of rising-loss epochs, over {len(sweep.seeds)} seeds",
        )  # fmt: skip
        report.write_table(
            folder, "claims", tables["claims"], "deeplizard's claims and whether they held"
        )
        loss_figure(result.runs, result.curves, folder / "loss_curves.png")
        (folder / "README.md").write_text(readme(tables, meta, sweep, result.runs))

    return runner.finish(result.runs, result.curves, meta, out, write, progress, tables=tables)


def summary(result: runner.Result) -> str:
    tables = result.meta["tables"]
    return "\n".join(
        [
            f"\n{NAME}: Adam on the drug trial\n",
            report.to_markdown(tables["learning_rates"]),
            report.to_markdown(tables["claims"]),
        ]
    )


def readme(tables: dict[str, pd.DataFrame], meta: dict, sweep: Sweep, runs: pd.DataFrame) -> str:
    claims = tables["claims"]
    region = diagnose.good_region(runs, within=0.02).iloc[0]
    return "\n".join(
        [
            "# drug_trial: deeplizard's learning-rate range on its own model (seed 002)",
            "",
            (__doc__ or "").strip(),
            "",
            f"{meta['n_runs']} runs ({len(sweep.lrs)} learning rates × {len(sweep.seeds)} seeds) "
            f"in {meta['programs']} compiled program; {meta['train_seconds']:.1f} s training, "
            f"{meta['compile_seconds']:.1f} s compiling on {meta['backend']}.",
            "",
            f"## The claims ({int(claims['held'].sum())} of {len(claims)} held; `claims`)",
            "",
            report.to_markdown(claims),
            "## Per learning rate (`learning_rates`)",
            "",
            report.to_markdown(tables["learning_rates"]),
            f"Learning rates within 2% of the best mean test accuracy (best: lr {region['best_lr']:g}, "
            f"{region['best']:.3f}) span {region['width_decades']:.1f} decades "
            f"({region['lo_lr']:g} … {region['hi_lr']:g}).",
            "",
            "`loss_curves.png`: training loss and test accuracy per epoch (mean, min–max band).",
            "`runs.csv` / `curves.csv`: every run and epoch; `meta.json`: versions, device, config.",
            "",
        ]
    )
