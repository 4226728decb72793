"""The release: what the defended API returns for a query (:mod:`.api`), and the kinds of output an
API can release (:mod:`.kinds`, torch-free so that the attacks can read it)."""
