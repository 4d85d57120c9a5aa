"""Sphinx extension for the DynaTree Book site (``local_extensions`` in ``_config.yml``).

After an HTML build it writes chapter 4b's live decoder into ``<site>/live/``: the embedded pair
as ONNX graphs, the page and onnxruntime-web (``python -m dynatree_lib export-web``; the graphs
are cached under ``$DYNATREE_CACHE``, so only the first build exports). ``DYNATREE_SITE_LIVE=0``
skips it (the chapter then shows the live page's "not on this site" message).

Jupyter Book 1 registers some scripts twice (every ``.js`` under ``_static`` is added to
``html_js_files``; sphinx-thebe's inline ``const`` configuration can be emitted twice), and a
repeated ``const`` declaration is a console error in the browser. Keep the first copy of each.
"""


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # inline scripts have filename None or "" depending on who added them
        key = (str(getattr(script, "filename", script) or ""), getattr(script, "attributes", {}).get("body"))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique  # in place: handlers after this one still add to it


def _write_live_page(app, exception):
    import os
    from pathlib import Path

    if exception is not None or app.builder.format != "html" or os.environ.get("DYNATREE_SITE_LIVE") == "0":
        return
    from dynatree_lib.web.export import export_web

    export_web(Path(app.outdir) / "live")


def setup(app):
    app.connect("build-finished", _write_live_page)
    # Early: html-page-context stops at the first handler that returns a template name.
    app.connect("html-page-context", _drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
