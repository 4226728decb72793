"""No defense: the undefended baseline every defense is compared with."""

from defenses.base import Defense, register_defense


@register_defense("none")
class NoDefense(Defense):
    """Train with the base recipe and release the full probability vector."""

    family = "none"
