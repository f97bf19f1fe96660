"""Content-checked artifact store: safetensors tensors + JSON manifests, atomic writes, no pickles."""

from expunge.store.artifacts import ArtifactStore, default_store_root, import_weights

__all__ = ["ArtifactStore", "default_store_root", "import_weights"]
