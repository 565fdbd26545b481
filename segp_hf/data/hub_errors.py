"""Why loading a Hub dataset failed, told by the error's type and HTTP status (never by digits found in its
text: a commit id may hold ``401``), and the one-line message that says what to do about it.

The kinds: ``gated`` (no access to a gated dataset), ``revision`` (the revision does not exist), ``missing``
(no such dataset, or no access to a private one: a misspelt id), ``unreachable`` (offline or the server cannot
be reached: everything else). Where each fact comes from:
- huggingface_hub's ``hf_raise_for_status`` raises ``GatedRepoError`` (``X-Error-Code: GatedRepo``),
  ``RevisionNotFoundError`` (``RevisionNotFound``) and ``RepositoryNotFoundError`` (``RepoNotFound``, or a 401
  on a repo URL: the Hub answers 401 for a missing repo too); each carries ``.response.status_code``;
- ``datasets.load_dataset`` re-raises those as ``DatasetNotFoundError`` with fixed sentences and may drop the
  cause (``raise e1 from None`` once its cache fallback fails), so that class is read by its sentence, with
  every quoted value (the id, the revision) blanked out first;
- any other client's HTTP error (requests, httpx) has ``.response.status_code``: 401 and 403 refuse access.
"""

from __future__ import annotations

import re

# datasets' DatasetNotFoundError sentences (datasets/load.py), quoted values blanked: -> kind
_DATASETS_SENTENCES = (
    ("is a gated dataset on the hub", "gated"),
    ("doesn't exist for dataset", "revision"),
    ("doesn't exist on the hub or cannot be accessed", "missing"),
)
# huggingface_hub error classes by name (the most specific first: GatedRepoError is a RepositoryNotFoundError)
_HUB_CLASSES = (("GatedRepoError", "gated"), ("RevisionNotFoundError", "revision"),
                ("RepositoryNotFoundError", "missing"))


def error_chain(error: BaseException):
    """``error`` and the errors it was raised from or while handling, outermost first."""
    seen = []
    while error is not None and all(error is not s for s in seen):
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _status(error: BaseException) -> int | None:
    status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _kind_of_one(error: BaseException, gated: bool) -> str | None:
    names = {cls.__name__ for cls in type(error).__mro__}
    for name, kind in _HUB_CLASSES:
        if name in names:
            return kind
    if "DatasetNotFoundError" in names:
        sentence = re.sub(r"'[^'\s]*'", "''", str(error)).lower()  # ids and revisions have no spaces
        return next((kind for phrase, kind in _DATASETS_SENTENCES if phrase in sentence), "missing")
    status = _status(error)
    if status in (401, 403):
        return "gated" if gated else "missing"
    if status == 404:
        return "missing"
    return None


def error_kind(error: BaseException, gated: bool = False) -> str:
    """``gated``, ``revision``, ``missing`` or ``unreachable`` (``gated``: the dataset is known to be gated,
    so a refused access means its terms were not accepted)."""
    for link in error_chain(error):
        kind = _kind_of_one(link, gated)
        if kind is not None:
            return kind
    return "unreachable"


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_error_message(dataset_id: str, revision: str | None, error: Exception, gated: bool = False,
                       pinned: bool = False, revision_setting: str = "--dataset_revision") -> str:
    """One message per failure kind. ``pinned``: ``revision`` is the library's pin, not the user's;
    ``revision_setting``: the setting that overrides it (``--zero_shot_revisions NAME=...`` for a zero-shot set)."""
    text = one_line(f"{type(error).__name__}: {error}")
    kind = error_kind(error, gated)
    if kind == "gated":
        return (f"'{dataset_id}' is gated and this account has no access ({text}). Accept its terms on "
                f"https://huggingface.co/datasets/{dataset_id} with your account, then `hf auth login` (or set "
                "HF_TOKEN) and run again.")
    if kind == "revision":
        return _revision_message(dataset_id, revision, text, pinned, revision_setting)
    if kind == "missing":
        return (f"the dataset '{dataset_id}' was not found on the Hub, or this account cannot access it ({text}). "
                "Check the id's spelling (--dataset_name ORG/NAME; a private one also needs `hf auth login`).")
    return unreachable_message(dataset_id, revision, text, gated)


def _revision_message(dataset_id, revision, text, pinned, setting) -> str:
    given = setting if setting.endswith("=") else f"{setting} "  # '--dataset_revision X', '--zero_shot_revisions S=X'
    if pinned:
        return (f"the pinned revision '{revision}' of '{dataset_id}' no longer exists on the Hub ({text}). "
                f"Pass {given}<commit or branch> (e.g. {given}main) to load another one; "
                "docs/benchmarks.md says which commit the paper's numbers need.")
    return (f"{setting} '{revision}' does not exist for '{dataset_id}' on the Hub ({text}). Give a commit, branch "
            "or tag the dataset has (its 'History' page lists the commits), or leave it unset for the default one.")


def unreachable_message(dataset_id: str, revision: str | None, text: str, gated: bool) -> str:
    rev = f", revision='{revision}'" if revision else ""
    gate = " It is gated: accept its terms on the Hub and `hf auth login` first." if gated else ""
    return (
        f"could not load the dataset '{dataset_id}'{rev} ({text}). "
        "Without network access, pre-download it on a machine that has it: "
        f"python -c \"import datasets; datasets.load_dataset('{dataset_id}'{rev}).save_to_disk('DIR')\" "
        "then copy DIR here and pass --data_dir DIR (an image folder <split>/<class>/<image> also works), "
        f"or warm the HF cache there and run with HF_DATASETS_OFFLINE=1.{gate}"
    )


def read_error_message(dataset_id: str, split: str, revision: str | None, error: BaseException) -> str:
    """A split that opened but broke while its rows streamed (a dropped connection, a server error): the
    innermost cause, in one line; nothing of the split was stored."""
    cause = error_chain(error)[-1]
    rev = f" at revision '{revision}'" if revision else ""
    text = one_line(f"{type(cause).__name__}: {cause}")
    return (f"reading the rows of '{dataset_id}' split '{split}'{rev} failed ({text}); nothing of it was stored: "
            "run again, or load a local copy with --data_dir.")
