"""Mode-collapse warnings from the metrics logged during training.

A generator has collapsed when its samples stop covering the data it once covered: the
class coverage falls to half the classes or fewer after having been above that, or the
samples' diversity (mean pairwise domain-feature distance relative to held-out images) falls
below half of its best value so far, after having reached ``SPREAD`` of the data's. Comparing
with the run's own best, once it was real variety, avoids warning about the blurry, uniform
samples of the first few hundred steps, which have not collapsed: they never spread out yet.
"""

from __future__ import annotations

SPREAD = 0.25  # diversity (relative to held-out images) that counts as having spread out


class CollapseWatch:
    def __init__(self, num_classes: int | None):
        self.num_classes = num_classes
        self.best_coverage = 0.0
        self.best_diversity = 0.0
        self.collapsed = False

    def check(self, values: dict[str, float]) -> str | None:
        """A warning when this evaluation shows a collapse that the previous one did not."""
        reasons = []
        coverage = values.get("class_coverage")
        if coverage is not None and self.num_classes:
            half = self.num_classes / 2
            if coverage <= half < self.best_coverage:
                reasons.append(
                    f"class coverage fell to {coverage:.0f} of {self.num_classes} classes "
                    f"(best so far {self.best_coverage:.0f})"
                )
            self.best_coverage = max(self.best_coverage, coverage)
        diversity = values.get("diversity")
        if diversity is not None:
            if self.best_diversity >= SPREAD and diversity < 0.5 * self.best_diversity:
                reasons.append(
                    f"sample diversity fell to {diversity:.2f} of the data's (best so far {self.best_diversity:.2f})"
                )
            self.best_diversity = max(self.best_diversity, diversity)
        was_collapsed, self.collapsed = self.collapsed, bool(reasons)
        if not reasons or was_collapsed:
            return None
        return "possible mode collapse: " + "; ".join(reasons)
