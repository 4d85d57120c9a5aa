"""``glue``: myst-nb's, when the site builder is installed; else just show the value.

The chapters glue measured numbers into their prose (myst-nb's ``{glue:text}``). That needs
myst-nb only when the site is built; a reader running a chapter in Colab or JupyterLab from
the light install (``dynatree-lib[chapters]``, no site builder) sees the value instead.
"""

from __future__ import annotations


def glue(name: str, variable, display: bool = True) -> None:
    """Glue ``variable`` under ``name`` for the site (myst-nb), or display it (no myst-nb)."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(variable)
        return
    myst_glue(name, variable, display)
