"""Signals: what every model's API releases on every pool point (:mod:`.arrays`, numpy only, what
the attacks read) and computing them from trained models (:mod:`.compute`)."""
