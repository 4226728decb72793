"""The model store: trained ensembles kept on disk, content-addressed, reused (issue 13).

``key.py`` names an ensemble by everything that determines its weights; ``entry.py`` writes and
reads one entry (weights, epsilons, held-out masks, a checksummed manifest written last);
``ensemble_store.py`` is the store itself: reuse or train under a lock, shards.
"""
