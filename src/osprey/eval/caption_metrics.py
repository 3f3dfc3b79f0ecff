"""METEOR and CIDEr(-D) through pycocoevalcap, the scorers behind the COCO caption "CaptionMetrics".

Both tokenise with the PTB tokenizer (Java) first. METEOR is Java as well; SPICE is not run: it
downloads Stanford CoreNLP on first use, which this offline project cannot do.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

SPICE_SKIPPED = "SPICE skipped: pycocoevalcap's SPICE downloads Stanford CoreNLP at run time (offline here)."


def require_java() -> str:
    """Path of ``java``; a clear error when it is missing (PTB tokenizer and METEOR need it)."""
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(
            "caption metrics need Java (pycocoevalcap's PTB tokenizer and METEOR run on the JVM): "
            "install a JRE, e.g. `apt-get install default-jre-headless`, and put `java` on PATH"
        )
    return java


def caption_scores(
    references: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    metrics: Sequence[str] = ("METEOR", "CIDEr"),
) -> dict[str, float]:
    """Corpus scores (pycocoevalcap's raw scale: METEOR 0..1, CIDEr-D 0..10) over the keys of ``predictions``.

    ``references[k]`` holds every reference caption of item ``k``; each prediction is one caption.
    """
    require_java()
    missing = [k for k in predictions if k not in references or not references[k]]
    if missing:
        raise ValueError(f"{len(missing)} predictions without references, e.g. {missing[:3]}")
    unknown = [m for m in metrics if m not in ("METEOR", "CIDEr")]
    if unknown:
        raise ValueError(f"unknown caption metrics {unknown}; expected METEOR and/or CIDEr")
    if not predictions:
        return {m: float("nan") for m in metrics}
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    keys = list(predictions)
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in references[k]] for k in keys})
    res = tokenizer.tokenize({k: [{"caption": predictions[k]}] for k in keys})
    scores: dict[str, float] = {}
    if "METEOR" in metrics:
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()
        try:
            scores["METEOR"] = float(meteor.compute_score(gts, res)[0])
        finally:
            _close_meteor(meteor)
    if "CIDEr" in metrics:
        from pycocoevalcap.cider.cider import Cider

        scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return scores


def _close_meteor(meteor) -> None:
    """Stop the METEOR JVM now rather than at interpreter exit (its ``__del__`` copes with a dead one)."""
    proc = getattr(meteor, "meteor_p", None)
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
