"""Training the ``K`` models: the recipe (:mod:`.recipe`), the engines behind one call
(:mod:`.engines`: :mod:`.sequential`, :mod:`.ensemble`, their private paths :mod:`.private` and
:mod:`.private_ensemble`), the stacked layers and their Opacus samplers (:mod:`.stacking`,
:mod:`.stacked_samplers`) and the DP accounting (:mod:`.accounting`)."""
