"""Linear probe: how linearly decodable the labels are from a model's latent codes.

Multinomial logistic regression (softmax regression) fitted on the training codes and scored by
accuracy on held-out codes, the linear evaluation protocol used for learned representations, e.g.
Donahue, Krähenbühl & Darrell 2017, "Adversarial Feature Learning" (BiGAN), and Dumoulin et al.
2017, "Adversarially Learned Inference". Codes are standardised with the training mean and std.
The fit is full-batch L-BFGS (Liu & Nocedal 1989) in float64 on the CPU, started from zero
weights, so the result is deterministic; the loss is the mean cross-entropy plus l2 * ||W||^2
(bias not penalised).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_probe_accuracy(
    train_codes: torch.Tensor,
    train_labels: torch.Tensor,
    test_codes: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    l2: float = 1e-4,
    max_iter: int = 200,
) -> float:
    """Test accuracy in [0, 1] of a softmax regression fitted on (train_codes [N, D], train_labels [N])."""
    x_train = train_codes.detach().to("cpu", torch.float64)
    x_test = test_codes.detach().to("cpu", torch.float64)
    y_train = train_labels.detach().to("cpu", torch.long)
    y_test = test_labels.detach().to("cpu", torch.long)

    mean = x_train.mean(dim=0)
    std = x_train.std(dim=0).clamp(min=1e-12)
    x_train = (x_train - mean) / std
    x_test = (x_test - mean) / std

    weight = torch.zeros(x_train.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(x_train @ weight + bias, y_train) + l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    with torch.no_grad():
        predictions = (x_test @ weight + bias).argmax(dim=1)
    return float((predictions == y_test).double().mean())
