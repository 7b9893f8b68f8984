"""Test configuration."""

import torch

# The networks under test are tiny: a second thread only adds synchronisation
# (and spinning, on a busy machine) to every matrix product.
torch.set_num_threads(1)
