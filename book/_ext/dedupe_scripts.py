"""Sphinx extension: drop repeated <script> entries from each page's head.

With Sphinx 7, sphinx-thebe (and sphinx-togglebutton) add their inline scripts again
for every notebook page, so a page gets ``const THEBE_JS_URL = ...`` twice and the
browser raises "Identifier 'THEBE_JS_URL' has already been declared".  This handler
runs after them and keeps the first copy of each script.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", None) or {}
        key = (str(getattr(script, "filename", script) or ""), tuple(sorted(map(str, attributes.items()))))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
