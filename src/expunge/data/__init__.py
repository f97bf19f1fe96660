"""Datasets, forget requests and the splits they resolve into."""
