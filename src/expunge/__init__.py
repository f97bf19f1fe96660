"""expunge: machine unlearning you can trust — methods, a retrain oracle and a tiered metric suite."""

__version__ = "0.1.0"
