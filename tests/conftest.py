"""Tests use one intra-op thread: the machine has two cores and pytest shares them with Ray
workers and other jobs; oversubscribed BLAS threads made tiny training steps ~30x slower."""

import torch

torch.set_num_threads(1)
