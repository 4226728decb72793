"""Training the ``K`` models: the recipe (:mod:`.recipe`), the training-hook interface that the
training-time defenses implement (:mod:`.hooks`), the engines behind one call (:mod:`.engines`:
:mod:`.sequential`, :mod:`.ensemble`, their private paths :mod:`.private` and
:mod:`.private_ensemble`), the stacked layers and their Opacus samplers (:mod:`.stacking`,
:mod:`.stacked_samplers`) and the DP accounting (:mod:`.accounting`)."""
