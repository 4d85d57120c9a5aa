"""Sphinx extension for the DynaTree Book site (``local_extensions`` in ``_config.yml``).

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


def setup(app):
    # Early: html-page-context stops at the first handler that returns a template name.
    app.connect("html-page-context", _drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
