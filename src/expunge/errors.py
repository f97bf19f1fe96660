"""One error hierarchy for expunge.

Every error a user can cause is an :class:`ExpungeError`. Messages say what was wrong, name the offending values
(ids, names) and say how to fix it; the CLI prints them on one line without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _preview(values: Iterable[Any], limit: int = 10) -> str:
    vals = list(values)
    head = ", ".join(str(v) for v in vals[:limit])
    return f"[{head}{', ...' if len(vals) > limit else ''}] ({len(vals)} in all)"


class ExpungeError(Exception):
    """Base class of every error expunge raises on purpose."""


class UnknownName(ExpungeError, KeyError):
    """A registry lookup failed (method, metric, model, dataset)."""

    def __init__(self, kind: str, name: str, known: Iterable[str], suggestions: Iterable[str] = ()) -> None:
        sugg = list(suggestions)
        hint = f" Did you mean {', '.join(repr(s) for s in sugg)}?" if sugg else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known))}.")
        self.kind, self.name = kind, name

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class DuplicateRegistration(ExpungeError):
    """Two objects tried to register under the same name."""


class InvalidHyperparameter(ExpungeError, ValueError):
    """A hyperparameter value is out of range or of the wrong type."""


class UndeclaredDataAccess(ExpungeError, PermissionError):
    """A method asked for data it did not declare in its ``access`` flags."""


class DatasetNotFound(ExpungeError, FileNotFoundError):
    """Dataset files are missing; the message says how to get them."""


class CorruptDataFile(DatasetNotFound):
    """A dataset file is there but unusable: not gzip, truncated, a wrong IDX header, or files that do not belong
    together (image and label counts that differ). The message names the file and says to replace it."""


class InvalidSeed(ExpungeError, ValueError):
    """A seed outside 0 ≤ seed < 2**32 (the range NumPy's and PyTorch's seeding accept)."""


class InvalidPath(ExpungeError, ValueError):
    """A folder expunge must write to (the artifact store, ``demo --out``, ``tune --presets-dir``) is a file, lies
    under a file, or is not writable. Nothing is written when raised."""


class IncompatibleModel(ExpungeError, ValueError):
    """An architecture that cannot take the dataset's inputs (a CNN on tabular features): found before training."""


class InvalidRunRecord(ExpungeError, ValueError):
    """A JSON document given as run records (``expunge aggregate``) is not a record or a list of records, or a record
    lacks a field or has one of the wrong type."""


class ArtifactError(ExpungeError):
    """Base for artifact-store problems."""


class CorruptArtifact(ArtifactError):
    """A stored file is missing, truncated or does not match its recorded hash."""


class UnsafeFormat(ArtifactError):
    """Refused to load a pickle-based file (code execution risk) without explicit opt-in."""


class InvalidArtifactKey(ArtifactError, ValueError):
    """An artifact kind or key that is not a plain name (a path like ``../x``): it would address a file outside the
    store. Nothing is read or written."""


class ForgetSetMismatch(ArtifactError):
    """A stored run's forget ids do not hash to the request fingerprint its manifest or its oracle records (the ids
    were edited, or the entries do not belong together): metrics on it would be computed on the wrong examples."""


class NonFiniteOutputs(ExpungeError, ValueError):
    """A model's outputs contain NaN or ±inf (a collapsed model): metrics on them are None with this reason."""


class InvalidInteractionFile(CorruptDataFile):
    """A user's interaction file (MovieLens format) has a line that is not ``user SEP item [SEP rating ...]``; the
    message names the file, the line number and its content, and the fix. The file is only read, never changed."""


class InvalidDataset(ExpungeError, ValueError):
    """Arrays that do not make a dataset of the named task (bad targets, mismatched lengths, class names on a
    regression dataset). Nothing is built or written when raised."""


class InvalidForgetRequest(ExpungeError, ValueError):
    """Base for forget requests and splits that cannot be honoured. Nothing is written when raised."""


class MalformedForgetSpec(InvalidForgetRequest):
    """The textual forget spec (``class:3``, ``random:0.1`` ...) could not be parsed."""


class EmptyForgetSet(InvalidForgetRequest):
    """The request selects no training example."""


class ForgetIsWholeTrainingSet(InvalidForgetRequest):
    """The request selects every training example: there is nothing left to retain."""


class UnknownIds(InvalidForgetRequest):
    """Some requested ids are not training-example ids of the dataset."""

    def __init__(self, ids: Iterable[Any], where: str = "training set") -> None:
        self.ids = list(ids)
        super().__init__(
            f"{len(self.ids)} requested id(s) are not in the {where}: {_preview(self.ids)}. "
            "Fix: use ids from `expunge.load_dataset(...).train.ids` (integers, one per line in an ids file)."
        )


class DuplicateIds(InvalidForgetRequest):
    """The same id is listed more than once."""

    def __init__(self, ids: Iterable[Any]) -> None:
        self.ids = list(ids)
        super().__init__(f"duplicate id(s) in the request: {_preview(self.ids)}. Fix: list each id once.")


class SplitOverlap(InvalidForgetRequest):
    """Two splits that must be disjoint share examples (forget ∩ retain, or test ∩ train)."""

    def __init__(self, first: str, second: str, ids: Iterable[Any], fix: str) -> None:
        self.ids = list(ids)
        super().__init__(f"{first} and {second} share {len(self.ids)} example id(s): {_preview(self.ids)}. Fix: {fix}")


class FingerprintMismatch(InvalidForgetRequest):
    """The dataset differs from the one the model was trained on."""


class DegenerateInputWarning(UserWarning):
    """A metric got inputs where it is undefined (one class, zero variance, tiny sets) and returned a defined value."""


class ExpungeWarning(UserWarning):
    """Base class of the warnings expunge issues about a request or a run that is valid but may mislead; the CLI prints
    each as one ``warning: ...`` line on stderr, and the record holds the same facts."""


class LargeForgetFraction(ExpungeWarning):
    """The request forgets a large share of the training set, where approximate unlearning methods are unreliable."""


class DuplicateContentWarning(ExpungeWarning):
    """Examples with identical content sit on both sides of a split (forget/retain or test/train)."""
