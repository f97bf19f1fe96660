"""Scenarios: how forget requests arise, one module per scenario (``expunge scenarios`` lists them).

A scenario turns (dataset, model, seed) into one or more prepared requests — each with its Original, its retrain
oracle and its baseline metrics — and runs a method on them, producing run records in the format of
:class:`~expunge.record.RunRecord`. Methods never know the scenario: they only see
:class:`~expunge.data.access.UnlearningData`. See :mod:`expunge.scenarios.base` for the protocol.
"""
