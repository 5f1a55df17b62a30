"""PII and secrets: Presidio configuration (``config``), the analyzer engine (``engine``), our recognizers
(``recognizers``), keyed pseudonyms (``pseudonym``), the scrubber applied to rows and quarantine rows
(``scrubber``), record ids holding PII (``record_ids``), scrubbing a file (``scrub_file``) and the
per-entity evaluation (``evaluate``).

Imports: base modules and ``quality`` (the residual-PII check); never ``stages`` or anything above.
"""
