"""The harness: everything that runs, times, checks and records generations.

What lives here: exactness verdicts (``exactness``), one timed generation of any method or
Hugging Face peer (``runner``), the benchmark protocol (``bench``, ``spec_bench``), quick
comparisons (``compare``), the explorer's first trees (``explorer``), forward-cost curves and
the cost model (``costs``), draft quality reports (``draft_quality``), the GPU check
(``gpu_check``), prompt data (``data``), where files live (``resources``), the machine a run
happened on and result-file names (``environment``), JSON schemas (``schema``), paired
intervals (``paired``) and self-repetition (``repetition``).

May import: :mod:`dynatree_lib.core` and :mod:`dynatree_lib.models`.
"""
