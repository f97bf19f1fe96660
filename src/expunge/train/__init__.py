"""The one training loop, training recipes and the cached original / retrain-oracle models."""
