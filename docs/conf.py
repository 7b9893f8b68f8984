"""Sphinx configuration for the sk_mmoe documentation.

Build (offline, warnings as errors; runs the gallery examples)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Add ``-D plot_gallery=0`` to skip running the examples. The built pages load
nothing from the network (MathJax is copied into the site); check it with::

    python docs/sphinxext/check_offline.py docs/_build/html

Run the ``testcode`` blocks of the user guide and the docstring examples
with::

    python -m sphinx -b doctest -D plot_gallery=0 docs docs/_build/doctest

Set ``SK_MMOE_DOCS_INTERSPHINX=1`` to enable cross-links to the NumPy,
scikit-learn, PyTorch and skorch documentation; this fetches their object
inventories over the network, so it is off by default.
"""

import os
import re
import sys
import warnings
from pathlib import Path

from docutils import nodes

DOCS_DIR = Path(__file__).resolve().parent
ROOT_DIR = DOCS_DIR.parent
# Import the package from the source tree, so the docs build without an
# install, and the helpers of the build from sphinxext/.
sys.path.insert(0, str(ROOT_DIR))
sys.path.insert(0, str(DOCS_DIR / "sphinxext"))

import torch

import sk_mmoe

# The gallery examples and doctests train small networks in this process. One
# thread is as fast for them as several, and several threads slow down
# badly when the CPU is shared with other jobs (parallel CI, tests).
torch.set_num_threads(1)

# -- Project information ------------------------------------------------------

project = "sk_mmoe"
author = "The sk_mmoe developers"
copyright = "The sk_mmoe developers"
release = getattr(sk_mmoe, "__version__", "0.0.0")
version = ".".join(release.split(".")[:2])

# -- General configuration ----------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    # Serves MathJax from the built site instead of a CDN, so that formulas
    # render offline.
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "literal"
nitpicky = False

# Turn on cross-project links only on request: fetching inventories needs the
# network and the default build must work offline.
if os.environ.get("SK_MMOE_DOCS_INTERSPHINX"):
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "pandas": ("https://pandas.pydata.org/docs", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "torch": ("https://docs.pytorch.org/docs/stable", None),
        "skorch": ("https://skorch.readthedocs.io/en/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
    }

# Without intersphinx, the docstrings that the estimator inherits from
# scikit-learn (``set_params``, metadata routing...) still refer to
# scikit-learn's glossary and user guide. Link those references to the
# scikit-learn site directly: the URLs are stable and need no inventory.
SKLEARN_DOCS = "https://scikit-learn.org/stable/"
SKLEARN_LABELS = {"metadata_routing": "metadata_routing.html"}


def _link_to_sklearn(app, env, node, contnode):
    """Resolve scikit-learn glossary terms and labels without the network."""
    if node.get("refdomain") != "std":
        return None
    target = node.get("reftarget", "")
    if node.get("reftype") == "term":
        uri = SKLEARN_DOCS + "glossary.html#term-" + "-".join(target.lower().split())
    elif node.get("reftype") == "ref" and target in SKLEARN_LABELS:
        uri = SKLEARN_DOCS + SKLEARN_LABELS[target]
    else:
        return None
    reference = nodes.reference("", "", internal=False, refuri=uri)
    reference += contnode
    return reference


# sphinx-gallery's execution-time pages load jQuery and DataTables from CDNs
# to make their table sortable: drop that raw HTML, keep the table, so that
# every page reads offline.
CDN_BLOCK = re.compile(r"^ *\.\. raw:: html\n\n(?:(?: {4,}.*)?\n)+", re.MULTILINE)


def _drop_cdn_scripts(app, docname, source):
    if docname.endswith("sg_execution_times"):
        source[0] = CDN_BLOCK.sub("", source[0])


def setup(app):
    # Called after intersphinx (when enabled), which resolves first.
    app.connect("missing-reference", _link_to_sklearn)
    app.connect("source-read", _drop_cdn_scripts)


# -- autodoc / autosummary / numpydoc ----------------------------------------

autosummary_generate = True
# Document inherited methods (get_params, set_params...) but not the many
# methods that torch modules inherit from torch.nn.Module.
autodoc_default_options = {"members": True, "inherited-members": "Module"}
autodoc_typehints = "none"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- sphinx-gallery -----------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    # A name, not the class: Sphinx caches only picklable configuration.
    "within_subsection_order": "gallery_order.ExamplesOrder",
    "doc_module": ("sk_mmoe",),
    "backreferences_dir": "generated/backreferences",
    # Link names in the examples to this project's API pages only; links to
    # other projects would need their inventories, i.e. the network.
    "reference_url": {"sk_mmoe": None},
    "download_all_examples": False,
    "show_memory": False,
    "plot_gallery": "True",
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "min_reported_time": 1,
}

# Examples call matplotlib without a display.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings(
    "ignore",
    category=UserWarning,
    message="Matplotlib is currently using agg",
)

# -- HTML output --------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sk_mmoe {release}"
html_static_path = []
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
    "secondary_sidebar_items": ["page-toc"],
}
html_context = {"default_mode": "light"}
