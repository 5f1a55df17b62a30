"""Test and benchmark helpers that are not tests: the stub OpenAI-compatible server (:mod:`.stub_llm`).

Imported as ``support.…`` (``tests/`` is on ``sys.path`` under pytest; benchmarks insert it).
"""
