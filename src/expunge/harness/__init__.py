"""The benchmark harness: grids of requests × methods × seeds from one config, a result store, and the rules that
turn many runs into trustworthy verdicts (speed-up references, per-seed parity, precompute, "no power")."""
