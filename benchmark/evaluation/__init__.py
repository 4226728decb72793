"""Evaluation: ROC metrics and intervals (:mod:`.metrics`), the empirical epsilon audit
(:mod:`.audit`), the stable metric keys (:mod:`.keys`) and an attack's result type
(:mod:`.results`). Pure numpy/scipy."""
