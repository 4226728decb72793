"""MLflow tracking: the store (:mod:`.store`), a configuration as params and tags (:mod:`.params`),
and recording a result (:mod:`.record`)."""
