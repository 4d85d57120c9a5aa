"""The algorithm: trees, growth rules, drafting, verification, acceptance and the decoding loop.

What lives here: method configs and the table of methods (``methods``, ``growth``), the token
tree (``tree``), the drafter protocol and the causal-LM drafter (``drafter``), context lookup
(``lookup``) as a calibrated second source (``sources``), DynaTree's history controller
(``controller``) and its measured prices (``pricing``), the target's generation_config
processors (``processors``), sampling (``sampling``), verification (``verify``), acceptance
(``accept``), KV compaction (``kv``), model probes (``compat``), the loop (``decode``), what it
returns (``results``) and its clock (``timing``).

May import: torch, transformers and the standard library; nothing else of ``dynatree_lib``.
"""
