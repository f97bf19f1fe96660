"""Client-level membership inference on arrays: did this client's data take part in training?

An attacker who holds samples of a client's data asks whether the model was trained on that client. Per-example
losses of one client are noisy; their mean over a group of the client's examples is the client-level signal. So
(a choice: ConDa, arXiv 2410.04144, reports a "membership inference attack" without a client-level definition):

* draw ``n_groups`` groups of ``group_size`` examples of the client (each group without replacement), and for each
  a *label-matched* group of non-member (test) examples — one test example of the same class per client example, so
  a label-skewed (non-IID) client is compared with unseen data of its own label mix, not with the test set's;
* score every group by the negative mean loss (a lower loss reads as "member"), and report the ROC-AUC of member
  vs non-member groups: 0.5 = the client's data looks like unseen data, 1 = every client group is more confidently
  fitted than every matched unseen group.

Known answers: identical loss distributions → ≈ 0.5; client losses all below every test loss → 1.0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from expunge.metrics.functional.mia import mia_auc


def client_mia_auc(client_losses: ArrayLike, client_labels: ArrayLike, test_losses: ArrayLike,
                   test_labels: ArrayLike, *, group_size: int = 20, n_groups: int = 200, seed: int = 0) \
        -> tuple[float | None, dict[str, object]]:
    """AUC of member (client) vs label-matched non-member (test) groups scored by −mean loss; (None, reason) when a
    class of the client has no test example or the client has fewer than 2 examples."""
    cl, cy = np.asarray(client_losses, np.float64), np.asarray(client_labels)
    tl, ty = np.asarray(test_losses, np.float64), np.asarray(test_labels)
    if cl.size < 2:
        return None, {"reason": f"the client has {cl.size} example(s); a group needs at least 2"}
    missing = np.setdiff1d(np.unique(cy), ty)
    if missing.size:
        return None, {"reason": f"no test example of class(es) {missing.tolist()} to match the client's"}
    g = min(group_size, cl.size // 2)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC11E]))
    by_class = {c: np.flatnonzero(ty == c) for c in np.unique(cy)}
    member, nonmember = np.empty(n_groups), np.empty(n_groups)
    for i in range(n_groups):
        pick = rng.choice(cl.size, size=g, replace=False)
        member[i] = -cl[pick].mean()
        matched = [rng.choice(by_class[c]) for c in cy[pick]]
        nonmember[i] = -tl[matched].mean()
    # the groups overlap (drawn from one client), so a standard error counts the disjoint groups the client holds
    return mia_auc(member, nonmember), {"group_size": int(g), "n_groups": n_groups,
                                        "independent_groups": int(cl.size // g)}
