"""Order of the examples in the gallery: the quick start first."""

from pathlib import Path

FIRST_EXAMPLES = ["plot_quickstart.py"]


class ExamplesOrder:
    """Sort key of the gallery: ``FIRST_EXAMPLES`` in order, then by file name.

    sphinx-gallery instantiates it with the examples' folder and calls it on
    each file name.
    """

    def __init__(self, src_dir: str) -> None:
        self.src_dir = src_dir

    def __call__(self, filename: str) -> tuple:
        name = Path(filename).name
        if name in FIRST_EXAMPLES:
            return (0, FIRST_EXAMPLES.index(name), name)
        return (1, 0, name)

    def __repr__(self) -> str:
        return f"ExamplesOrder(first={FIRST_EXAMPLES})"
