"""One configuration: planned and checked (:mod:`.plan`), executed (:mod:`.execute`), its result
(:mod:`.results`)."""
