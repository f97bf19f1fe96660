"""Torch's one-off lazy initialisation, paid before anything is timed.

The first backward pass and optimizer step of a process take about a second on their own (measured by the harness:
the first cell of a fresh process recorded 2.66 s for neggrad_plus against 0.47 s for the same call on the next
seed). Timed as unlearning, that second made the first run of every process look several times slower than it is,
so :func:`~expunge.protocols.runner.run_method` (every unlearning call) and the harness's workers call
:func:`warm_up` first; it does the work once per process.
"""

from __future__ import annotations

import functools


@functools.cache
def warm_up() -> None:
    """Run one backward pass and one step of each optimizer the methods use, on a tiny network (once per process)."""
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    x, y = torch.randn(3, 4), torch.tensor([0, 1, 0])
    for opt in (torch.optim.Adam(net.parameters()), torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
                torch.optim.AdamW(net.parameters())):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
