"""What an API can release, from most to least informative; attacks declare what they need."""

#: ``probabilities``: the full softmax vector; ``truncated``: some of it (top-k, rounding);
#: ``label``: the predicted class alone.
RELEASE_KINDS = ("probabilities", "truncated", "label")
