"""The default experiment: plain SGD on the blobs problem at eight learning rates.

Reproduces the learning-rate grid of Machine Learning Mastery's "Understanding the Impact of
Learning Rate on Neural Network Performance": ``make_blobs`` (3 classes, 2 features,
cluster_std 2, random_state 2), 500 train / 500 test, Dense(50, relu, he_uniform) ->
Dense(3, softmax), categorical cross-entropy, 200 epochs, batch 32, SGD with
lr in {1, 1e-1, ..., 1e-7}. The tutorial reports that lr 1.0 oscillates, 1e-6 and 1e-7 learn
nothing, and 1e-1 ... 1e-3 learn, more slowly as the rate falls.
"""

from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Sweep


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
