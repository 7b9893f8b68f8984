"""Control over data-parallel training.

A fit is data-parallel when ``torch.distributed`` is initialised with more
than one process; :func:`single_process` fits a model in one process of
such a job all the same (see :ref:`distributed`).
"""

from ._fitting.distributed import single_process

__all__ = ["single_process"]
