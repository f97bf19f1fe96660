"""client_mia_auc: known answers of the group attack."""

from __future__ import annotations

import numpy as np

from expunge.metrics.functional.client_mia import client_mia_auc


def test_same_distribution_reads_as_unseen():
    # a large client, so its sample mean sits close to the population's (a 200-example client's own mean deviates
    # enough to move the AUC by ±0.25: the attack judges this client's data, not its distribution)
    rng = np.random.default_rng(0)
    value, details = client_mia_auc(rng.exponential(size=4000), rng.integers(0, 3, 4000), rng.exponential(size=6000),
                                    rng.integers(0, 3, 6000), seed=1)
    assert abs(value - 0.5) < 0.1 and details["group_size"] == 20 and details["independent_groups"] == 200


def test_lower_client_losses_read_as_member():
    value, _ = client_mia_auc(np.full(50, 0.1), np.zeros(50), np.full(80, 2.0), np.zeros(80))
    assert value == 1.0


def test_groups_are_label_matched():
    # the client holds only class 1; class-1 test losses equal the client's, class-0 test losses are far higher:
    # matching by label compares like with like (≈ 0.5 instead of 1)
    client_y, test_y = np.ones(40, int), np.r_[np.zeros(100, int), np.ones(100, int)]
    test_l = np.r_[np.full(100, 5.0), np.linspace(0.0, 1.0, 100)]
    value, _ = client_mia_auc(np.linspace(0.0, 1.0, 40), client_y, test_l, test_y)
    assert 0.3 < value < 0.7


def test_missing_class_or_tiny_client_gives_none():
    assert client_mia_auc(np.ones(5), np.full(5, 2), np.ones(5), np.zeros(5))[0] is None
    assert client_mia_auc(np.ones(1), np.zeros(1), np.ones(5), np.zeros(5))[0] is None
