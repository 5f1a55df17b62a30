"""Prompts as code: the registry of topics and versioned Jinja2 templates under ``include/prompts/``
(``registry``) and the reference candidates for company matching (``matching``).

Imports: base modules and ``providers.routing`` (a topic's model routes); nothing above.
"""
