"""``X`` and ``Y`` as the network reads them: the input handling, the
categorical columns of ``X``, pandas/polars tables and the target columns."""
