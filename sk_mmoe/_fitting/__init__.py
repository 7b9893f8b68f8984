"""Training plumbing behind ``fit``: the skorch net, batches, threads and
data-parallel training across processes."""
