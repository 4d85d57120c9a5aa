"""What the book shows: the numbers it glues (``numbers``), its figures (``viz``) and the
control panel of a live kernel (``widgets``).

May import: :mod:`dynatree_lib.core`, :mod:`dynatree_lib.models` and :mod:`dynatree_lib.harness`.
"""
