"""Prompts as code: the registry of topics and versioned Jinja2 templates under ``include/prompts/``
(``registry``), the reference candidates for company matching (``matching``) and analysts' feedback on
published answers (``feedback``: below ``lifecycle`` and ``governance`` so both may read it).

Imports: base modules and ``providers.routing`` (a topic's model routes); nothing above.
"""
