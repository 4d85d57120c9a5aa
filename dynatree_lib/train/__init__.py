"""Training the embedded pair's drafts: the distilled shortlist draft (``draft``) and the
feature head (``head``), each a command (``python -m dynatree_lib.train.draft``, ``... .head``).

May import: :mod:`dynatree_lib.core`, :mod:`dynatree_lib.models` and :mod:`dynatree_lib.harness`.
"""
