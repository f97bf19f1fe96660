"""``expunge serve DIR``: a local web dashboard comparing unlearned models side by side (issue 27).

A FastAPI backend (:mod:`expunge.dashboard.app`) serves JSON read from a bench folder's result store
(:mod:`expunge.dashboard.catalog`) and from the unlearned weights in the artifact store
(:mod:`expunge.dashboard.outputs`), and a static front-end of plain ES modules shipped as package data (no Node, no
build step, Plotly's JavaScript served from the installed ``plotly`` package: nothing is fetched from the internet).
The layer sits just below ``cli``: it reads the harness' store and reuses its verdict rules, never re-derives them.
"""
