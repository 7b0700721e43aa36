"""The message for an override of a key the config does not have (`model.learnin_rate=0.1`).

Hydra says "Could not override 'model.learnin_rate'. To append to your config use +...", which
suggests adding the typo. This names the file that lacks the key, the keys it has there and the
closest of them, and keeps `+` as the way to add a key on purpose.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence

from omegaconf import DictConfig, OmegaConf

_HYDRA = re.compile(r"Could not override '([^']+)'")


def unknown_key_message(
    hydra_text: str, overrides: Sequence[str], compose_others: Callable[[list[str]], tuple[DictConfig, dict]]
) -> str | None:
    """A one-paragraph error for Hydra's "Could not override" `hydra_text`, else None.

    `compose_others` composes the config (and Hydra's group choices) without the offending override,
    to read the keys that exist where it pointed.
    """
    found = _HYDRA.search(hydra_text)
    if not found:
        return None
    key = found.group(1)
    given = next((o for o in overrides if o.split("=", 1)[0] == key), None)
    if given is None:
        return None
    try:
        raw, choices = compose_others([o for o in overrides if o is not given])
    except Exception:  # the rest does not compose either: Hydra's own message is the better one then
        return None
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(raw, parent) if parent else raw
    if not isinstance(node, DictConfig):
        return None
    group = key.split(".", 1)[0]
    where = f"conf/{group}/{choices[group]}.yaml" if isinstance(choices.get(group), str) else "conf/config.yaml"
    keys = sorted(str(k) for k in node.keys())
    close = difflib.get_close_matches(leaf, keys, n=1)
    hint = f"Did you mean {parent + '.' if parent else ''}{close[0]}? " if close else ""
    return (
        f"Unknown key in the override {given}: {parent or 'the config'} (from {where}) has no key '{leaf}'. "
        f"{hint}Its keys: {', '.join(keys)}. To add a key that file lacks on purpose, prefix the override "
        f"with +: +{given}."
    )
