"""Configuration: the typed schema (:mod:`.schema`), composing ``conf/`` (:mod:`.compose`) and
the checks types cannot express (:mod:`.checks`).

The dataclasses of :mod:`.schema` are the one source of truth for every default.
"""
