"""Protocols: everything that runs an unlearning method.

* :mod:`~expunge.protocols.runner` — the only place a method is called (copy, data gate, timing, memory, checks);
* :mod:`~expunge.protocols.pipeline` — one request end to end (Original, oracle, method, metrics, run record);
* :mod:`~expunge.protocols.repeated` — cached repeated runs of a method (on shadows, with N seeds);
* :mod:`~expunge.protocols.tier2` — the tier-2 pipelines (U-LiRA, privacy onion, seeded runs) whose outputs the
  tier-2 metrics judge.

This layer sits above methods and metrics (it imports both); metrics never import methods.
"""
