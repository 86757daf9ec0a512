"""Where a transformers network's files come from: a local folder, or the Hugging Face hub.

The modality plugins (semilearn-nlp, semilearn-audio) load their encoders (and text's
tokenizer) the same way: the plugin's ``pretrain_path`` names a folder written by
``save_pretrained``, and without it the network's name picks its checkpoint on the hub
(downloaded once, then read from the local cache, also offline). When neither is there,
the error is one line that says how to provide the files. A plugin describes itself with
a :class:`HubFiles` (its config section, its distribution, its networks' hub names) and
keeps which transformers class loads what.

transformers is imported inside :meth:`HubFiles.load` only, when a run builds its data or
network: the core never imports it, and a plugin's discovery does not either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError

__all__ = ["HubFiles"]


@dataclass(frozen=True)
class HubFiles:
    """The pretrained files of one plugin's networks.

    Attributes:
        section: the plugin's config section, whose ``pretrain_path`` names a folder
            (``"nlp"``); the messages name the key.
        distribution: the plugin's distribution (``"semilearn-nlp"``), for the message of a
            network without a checkpoint on the hub.
        hub_names: network name -> its checkpoint on the hub.
        contents: what a folder of the plugin holds (``"weights and tokenizer"``).
    """

    section: str
    distribution: str
    hub_names: Mapping[str, str]
    contents: str

    def source_of(self, net: str, pretrain_path: str | None) -> str:
        """What ``from_pretrained`` reads for ``net``: the folder ``pretrain_path`` or the hub name."""
        if pretrain_path:
            folder = Path(pretrain_path).expanduser()
            if not folder.is_dir():
                raise ConfigError(
                    f"{self.section}.pretrain_path '{pretrain_path}' is not a folder: point it at the folder "
                    f"save_pretrained wrote the {self.contents} of {net} to"
                )
            return str(folder)
        if net not in self.hub_names:
            raise ConfigError(
                f"net '{net}' has no checkpoint on the hub that {self.distribution} knows: set "
                f"{self.section}.pretrain_path to the folder holding its {self.contents} (save_pretrained)"
            )
        return self.hub_names[net]

    def load(self, auto_class: str, net: str, pretrain_path: str | None, what: str) -> Any:
        """``transformers.<auto_class>.from_pretrained`` of ``net``'s source, without progress
        bars or notices (a run logs its own lines); a failure is one line naming ``what``
        (``"weights"``, ``"tokenizer"``) and how to provide it."""
        source = self.source_of(net, pretrain_path)
        _quiet_transformers()
        import transformers

        try:
            return getattr(transformers, auto_class).from_pretrained(source)
        except Exception as error:  # noqa: BLE001 - transformers raises OSError, ValueError or the hub's errors
            raise self._not_found(net, source, what, error) from error

    def _not_found(self, net: str, source: str, what: str, error: BaseException) -> DataError:
        if Path(source).is_dir():
            return DataError(
                f"{source} ({self.section}.pretrain_path) holds no {what} of a transformers model for net '{net}' "
                f"({_first_line(error)}); write them there with save_pretrained"
            )
        return DataError(
            f"net '{net}' needs the {what} of {source}: not in the Hugging Face cache, and the hub cannot be reached "
            f"({_first_line(error)}); where online, run `hf download {source}` (or save_pretrained them to a folder "
            f"and set --set {self.section}.pretrain_path=FOLDER)"
        )


def _quiet_transformers() -> None:
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
