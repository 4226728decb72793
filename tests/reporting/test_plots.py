"""Report figures: every suite attack its own style, labels that do not collide, readable axes."""

from __future__ import annotations

import numpy as np

from attacks.base import ATTACKS
from benchmark.evaluation.metrics import Interval
from benchmark.reporting.plots import (
    TradeoffPoint,
    attack_styles,
    family_styles,
    place_labels,
    plot_epsilons,
    plot_tradeoff,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_suite_attack_has_its_own_colour_and_keeps_it():
    names = sorted(ATTACKS)
    assert len(names) >= 11
    styles = attack_styles(names)
    assert len({colour for colour, _ in styles.values()}) == len(names)
    assert "grey" not in {c for c, _ in styles.values()}  # the chance line's colour
    assert attack_styles(["rmia", "loss"])["rmia"] == styles["rmia"]  # same in every figure
    assert set(attack_styles(["loss", "new_attack"])) == {"loss", "new_attack"}


def test_unknown_families_get_their_own_marker():
    styles = family_styles(["none", "dp", "regularisation", "dp"])
    assert len(set(styles.values())) == 3 and list(styles)[:2] == ["none", "regularisation"]


def _boxes(anchors, sizes, offsets):
    return [
        (x + dx - w / 2, y + dy - h / 2, x + dx + w / 2, y + dy + h / 2)
        for (x, y), (w, h), (dx, dy) in zip(anchors, sizes, offsets, strict=True)
    ]


def test_labels_of_clustered_points_do_not_overlap():
    anchors = np.array([(100.0, 100.0), (104.0, 102.0), (98.0, 97.0), (101.0, 105.0)])
    sizes = np.full((4, 2), (20.0, 10.0))
    rings = [(r * np.cos(a), r * np.sin(a)) for r in (15, 25, 40) for a in np.linspace(0, 6, 8)]
    boxes = _boxes(anchors, sizes, place_labels(anchors, sizes, rings, marker=8))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap_x = min(a[2], b[2]) - max(a[0], b[0])
            overlap_y = min(a[3], b[3]) - max(a[1], b[1])
            assert overlap_x <= 0 or overlap_y <= 0, (a, b)


def test_figures_draw_with_zeros_and_wide_epsilon_ranges(tmp_path):
    accountant = [Interval(35.0, 30.0, 40.0), Interval(1.0, 0.9, 1.1), Interval(0.2, 0.2, 0.2)]
    empirical = [Interval(0.0, 0.0, 0.1), Interval(0.3, 0.1, 0.5), Interval(0.05, 0.0, 0.1)]
    path = plot_epsilons(["C1", "C2", "C3"], accountant, empirical, tmp_path / "eps.png")
    assert path.read_bytes().startswith(PNG)
    points = [
        TradeoffPoint(f"C{i}", "none", Interval(0.0, 0.0, 0.0), Interval(0.8, 0.79, 0.81))
        for i in range(5)
    ]
    path = plot_tradeoff(points, [0], tmp_path / "tradeoff.png")
    assert path.read_bytes().startswith(PNG)
