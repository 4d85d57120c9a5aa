"""The live page: ONNX step graphs of the embedded pair (``export``) and the page that decodes
with them in a browser (``page/``: HTML, CSS and the JavaScript decoder).

May import: :mod:`dynatree_lib.core`, :mod:`dynatree_lib.models` and :mod:`dynatree_lib.harness`.
"""
