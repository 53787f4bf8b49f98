"""The default experiment: plain SGD on the blobs problem at eight learning rates.

Reproduces the learning-rate grid of Machine Learning Mastery's "Understanding the Impact of
Learning Rate on Neural Network Performance": ``make_blobs`` (3 classes, 2 features,
cluster_std 2, random_state 2), 500 train / 500 test, Dense(50, relu, he_uniform) ->
Dense(3, softmax), categorical cross-entropy, 200 epochs, batch 32, SGD with
lr in {1, 1e-1, ..., 1e-7}. The tutorial reports that lr 1.0 oscillates, 1e-6 and 1e-7 learn
nothing, and 1e-1 ... 1e-3 learn, more slowly as the rate falls.

The experiment runs through the generic runner (so it resumes, shards and merges), which
measures its claims on the ``runs`` table and writes the claims table and this README.
"""

from lrbench.claims import Claim, over_seeds, per_seed
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Sweep

TITLE = "the learning-rate grid of Machine Learning Mastery's blobs tutorial"
ARTICLE = (
    'Machine Learning Mastery, "Understanding the Impact of Learning Rate on Neural Network '
    'Performance"'
)


def get_config() -> Sweep:
    return Sweep(
        experiment="blobs_lr",
        description="MLM blobs: SGD learning-rate sweep (lr 1 ... 1e-7, 5 seeds, 200 epochs)",
        dataset="blobs",
        model=MLPConfig(hidden=(50,), activation="relu", kernel_init="he_uniform"),
        epochs=200,
        batch_size=32,
        lrs=(1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7),
        optimizers=(Optimizer("sgd"),),
        seeds=(0, 1, 2, 3, 4),
    )


def acc(t, lr: float):
    """Final test accuracy at ``lr``, per seed."""
    return per_seed(t["runs"], lr, "final_test_acc")


CLAIMS = (
    Claim("lr_1_oscillates", "[at lr 1.0] the performance oscillates [paraphrase]",
          "share of seeds at lr 1 whose status is oscillating",
          lambda t: float((per_seed(t["runs"], 1.0, "status") == "oscillating").mean()), ">", 0.5),
    Claim("lr_1_ends_low", "[at lr 1.0] the performance oscillates [paraphrase]",
          "final test accuracy at lr 1 (interval: seeds)",
          lambda t: over_seeds(acc(t, 1.0)), "<", 0.7),
    Claim("tiny_lrs_learn_nothing", "[lr 1e-6 and 1e-7] learn nothing [paraphrase]",
          "higher mean final test accuracy of lr 1e-6 and 1e-7 (3 classes: chance 1/3)",
          lambda t: max(acc(t, 1e-6).mean(), acc(t, 1e-7).mean()), "<", 0.5),
    Claim("slower_as_lr_falls", "[1e-1 … 1e-3] learn, more slowly as the rate falls "
          "[paraphrase]", "final test accuracy at lr 1e-3 minus at lr 1e-2 (paired by seed)",
          lambda t: over_seeds(acc(t, 1e-3) - acc(t, 1e-2)), "<", 0.0),
)  # fmt: skip
