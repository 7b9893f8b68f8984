"""The PyTorch side of sk_mmoe: the network, its loss and the task weighting.

* :mod:`sk_mmoe.nn.network` -- the MMoE network and its building blocks
  (batched expert layers, gates, input layers), usable without the
  estimators.
* :mod:`sk_mmoe.nn.losses` -- the multi-task loss over the labelled entries.
* :mod:`sk_mmoe.nn.weighting` -- how the per-task losses add up to one loss.
"""
