"""Saved rankers: a JSON description and named numpy arrays (``.npz``), never a pickle.

The arrays hold the training interactions (``data__*``), what the ranker saves of its
own (``model__*``, see :meth:`RankerBase._arrays`) and P(buy | shown) learnt from impressions
(``shown__p``, described by ``shown_conversion``); a ranker that saves nothing of its own is
fitted again from the interactions when loaded. Live sessions and items seen only live are
left out.
"""

from __future__ import annotations

import inspect
import json
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from target_personalize.engine.exceptions import ModelFormatError
from target_personalize.engine.ranking.interactions import Interactions
from target_personalize.engine.ranking.objectives import Objectives
from target_personalize.engine.ranking.shown_conversion import ShownConversion

if TYPE_CHECKING:
    from collections.abc import Mapping

    from target_personalize.engine.ranking.contract import RankerBase

__all__ = ["MODEL_FORMAT", "model_payload", "ranker_from_payload", "read_model", "write_model"]

#: Format of saved models.
MODEL_FORMAT = 1

R = TypeVar("R", bound="RankerBase")
Arrays = dict[str, npt.NDArray[Any]]


def model_payload(
    ranker: RankerBase, data: Interactions, own: Mapping[str, npt.NDArray[Any]]
) -> tuple[dict[str, Any], Arrays]:
    """The description and the arrays of ``ranker`` fitted on ``data``, with its ``own`` arrays."""
    arrays = {f"data__{k}": v for k, v in data.arrays().items()}
    arrays.update({f"model__{k}": v for k, v in own.items()})
    meta = {
        "format": MODEL_FORMAT,
        "ranker": ranker.name,
        "class": type(ranker).__name__,
        "params": ranker.get_params(),
        "event_weights": ranker.event_weights,
        "key_conversion": ranker.key_conversion,
        "objectives": ranker.objectives.as_dict(),
        "fitted_at": ranker.fitted_at,
        "loaded_until": ranker.loaded_until.isoformat() if ranker.loaded_until else None,
        "train_window_days": ranker.train_window_days,
        "events": len(data),
        "sessions": data.n_sessions,
        "items": len(data.items),
    }
    shown = ranker.conversion_model
    if isinstance(shown, ShownConversion):
        arrays["shown__p"] = shown.p[: len(data.items)]
        meta["shown_conversion"] = {**shown.summary, "fallback": shown.fallback}
    return meta, arrays


def ranker_from_payload(
    cls: type[R], meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]
) -> R:
    """The ranker described by ``meta`` and ``arrays``: a ``cls`` or one of its subclasses.

    Raises:
        ModelFormatError: for another format version, another kind of ranker, or a payload
            that lacks what the ranker needs.
    """
    if meta.get("format") != MODEL_FORMAT:
        raise ModelFormatError(f"unsupported model format {meta.get('format')!r}")
    kind = _kinds(cls).get(str(meta.get("class")))
    if kind is None:
        raise ModelFormatError(f"the model is a {meta.get('class')}, not a {cls.__name__}")
    try:
        ranker = kind(**meta.get("params", {}))
        ranker._set_weights(meta.get("event_weights"), meta.get("key_conversion"))
        ranker.objectives = Objectives.parse(meta.get("objectives"))
        loaded = meta.get("loaded_until")
        ranker.loaded_until = datetime.fromisoformat(loaded) if loaded else None
        window = meta.get("train_window_days")
        ranker.train_window_days = None if window is None else float(window)
        data = Interactions.from_arrays(
            {k.removeprefix("data__"): v for k, v in arrays.items() if k.startswith("data__")}
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFormatError(f"the saved model is incomplete: {error}") from error
    ranker._prepare(data)
    own = {k.removeprefix("model__"): v for k, v in arrays.items() if k.startswith("model__")}
    if not ranker._restore(own):
        ranker._fit(data)
    ranker.fitted_at = float(meta.get("fitted_at") or math.nan)
    shown = meta.get("shown_conversion")
    if "shown__p" in arrays and isinstance(shown, dict):
        summary = {k: v for k, v in shown.items() if k != "fallback"}
        p = np.asarray(arrays["shown__p"], dtype=np.float64)
        ranker.conversion_model = ShownConversion(p, float(shown.get("fallback", 0.0)), summary)
    return ranker


def _kinds(cls: type[R]) -> dict[str, type[R]]:
    """``cls`` (unless abstract) and every subclass of it, by class name."""
    found: dict[str, type[R]] = {} if inspect.isabstract(cls) else {cls.__name__: cls}
    pending = [cls]
    while pending:
        for sub in pending.pop().__subclasses__():
            found[sub.__name__] = sub
            pending.append(sub)
    return found


def npz_path(path: str | Path) -> Path:
    """``path`` with the ``.npz`` suffix (added when it has another)."""
    target = Path(path)
    return target if target.suffix == ".npz" else target.with_name(target.name + ".npz")


def write_model(path: str | Path, meta: Mapping[str, Any], arrays: Mapping[str, Any]) -> Path:
    """Write ``arrays`` to ``path`` (``.npz``, atomically) and ``meta`` to the ``.json`` beside.

    Returns:
        The ``.npz`` path.
    """
    target = npz_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp.npz")
    savez: Any = np.savez
    savez(temporary, **arrays)
    temporary.replace(target)
    target.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return target


def read_model(path: str | Path) -> tuple[dict[str, Any], Arrays]:
    """The description and the arrays written by :func:`write_model` (no pickle).

    Raises:
        ModelFormatError: if the files are missing or unreadable.
    """
    target = npz_path(path)
    try:
        meta = json.loads(target.with_suffix(".json").read_text(encoding="utf-8"))
        with np.load(target, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
    except (OSError, ValueError) as error:
        raise ModelFormatError(f"cannot read the model at {target}: {error}") from error
    return meta, arrays
