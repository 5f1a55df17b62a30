"""PII and secrets: Presidio configuration (``config``), the analyzer engine (``engine``), our recognizers
(``recognizers``), keyed pseudonyms (``pseudonym``), scrubbing a file (``scrub_file``) and the per-entity
evaluation (``evaluate``).

Imports: base modules and ``quality`` (the residual-PII check); never ``stages`` or anything above.
"""
