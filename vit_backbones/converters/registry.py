"""One registry of checkpoint layouts per backbone family, and the dispatcher every loader goes through.

A family's converter file lists its layouts once (name, key signature, converter to ours, exporter back where one
exists) and registers them with :func:`register_family`. The load-time hook of :class:`BaseBackbone`, the offline
``tools/convert_checkpoint.py`` and the tests all read this registry, so a new family touches only its own files.

Everything here is pure: dicts in, dicts out, no file I/O.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from torch import Tensor

from .common import CheckpointMismatchError, Converted

OURS = 'vit_backbones'


@dataclass(frozen=True)
class Layout:
    """One checkpoint layout of a family.

    Attributes:
        name: ``'timm'``, ``'official'``, ``'mm'`` (mmdet/mmseg) or ``'vit_backbones'`` (ours).
        matches: The key signature: True when a state dict is in this layout.
        to_ours: Converter from this layout to ours.
        from_ours: Exporter from ours to this layout, where one exists.
        description: One line for help texts and error messages.
    """

    name: str
    matches: Callable[[Mapping[str, Any]], bool]
    to_ours: Callable[[dict[str, Any]], Converted]
    from_ours: Optional[Callable[[dict[str, Any]], Converted]] = None
    description: str = ''


@dataclass(frozen=True)
class CheckpointFamily:
    """The layouts of one backbone family, tried in order (the first whose signature matches wins).

    Attributes:
        name: Family name used by the CLI (``'swin'``).
        backbones: Registered backbone classes that read these checkpoints.
        layouts: Layouts in detection order.
    """

    name: str
    backbones: tuple[str, ...]
    layouts: tuple[Layout, ...] = field(default_factory=tuple)

    def detect(self, state_dict: Mapping[str, Any]) -> Optional[Layout]:
        """The first layout whose signature matches ``state_dict``, or None."""
        return next((layout for layout in self.layouts if layout.matches(state_dict)), None)

    def exporters(self) -> dict[str, Callable[[dict[str, Any]], Converted]]:
        """Target layout name -> exporter from ours."""
        return {layout.name: layout.from_ours for layout in self.layouts if layout.from_ours is not None}


class UnknownLayoutError(CheckpointMismatchError):
    """A state dict matches no layout of the family it was given to."""


FAMILIES: dict[str, CheckpointFamily] = {}


def register_family(family: CheckpointFamily) -> CheckpointFamily:
    """Add ``family`` to the registry (once per name)."""
    if family.name in FAMILIES and FAMILIES[family.name] is not family:
        raise KeyError(f'checkpoint family {family.name!r} is already registered')
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> CheckpointFamily:
    """The registered family ``name``; a ``ValueError`` lists the known ones."""
    if name not in FAMILIES:
        raise ValueError(f'unknown backbone family {name!r}; expected one of {sorted(FAMILIES)}')
    return FAMILIES[name]


def identify(state_dict: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (family, layout) whose signature matches ``state_dict``, across all registered families."""
    found = []
    for family in FAMILIES.values():
        layout = family.detect(state_dict)
        if layout is not None:
            found.append((family.name, layout.name))
    return found


def describe_unknown(state_dict: Mapping[str, Any], family: CheckpointFamily) -> str:
    """Why ``state_dict`` is not a checkpoint of ``family``: what it looks like instead, and its first keys."""
    if not state_dict:
        return 'the checkpoint holds no tensors (an empty state dict)'
    others = [f'{name} ({layout} layout)' for name, layout in identify(state_dict) if name != family.name]
    sample = ', '.join(sorted(state_dict)[:6])
    known = ', '.join(layout.name for layout in family.layouts)
    what = f'it looks like a {" or ".join(others)} checkpoint' if others else 'no known layout matches its keys'
    return f'not a {family.name} checkpoint in any layout we read ({known}): {what}. Its first keys: {sample}'


def convert_to_ours(state_dict: dict[str, Any], family: str) -> Converted:
    """Detect the layout of ``state_dict`` among ``family``'s and convert it to ours.

    Raises:
        UnknownLayoutError: no layout of the family matches (the message says what it looks like instead).
    """
    fam = get_family(family)
    layout = fam.detect(state_dict)
    if layout is None:
        raise UnknownLayoutError(describe_unknown(state_dict, fam))
    return layout.to_ours(state_dict)


def export_from_ours(state_dict: dict[str, Any], family: str, target: str) -> Converted:
    """Convert ``state_dict`` (any layout of ``family``) to ours, then export it to ``target``."""
    fam = get_family(family)
    if target == OURS:
        return convert_to_ours(state_dict, family)
    exporters = fam.exporters()
    if target not in exporters:
        raise ValueError(f'cannot export {family} to {target!r}; targets: {sorted([OURS, *exporters])}')
    ours = convert_to_ours(state_dict, family)
    exported = exporters[target](ours.state_dict)
    return Converted(exported.state_dict, ours.source, {**ours.dropped, **exported.dropped})


@dataclass
class ConversionReport:
    """How a converted state dict fits a model: mapped, dropped, unmatched and missing keys.

    Attributes:
        source: Layout the checkpoint was read as.
        mapped: Keys that exist in the model with the same shape.
        dropped: Keys the converter left out on purpose, with the reason.
        unmatched: Converted keys the model lacks, or has with another shape (key -> why).
        missing: Model keys the checkpoint does not provide.
    """

    source: str
    mapped: list[str]
    dropped: dict[str, str]
    unmatched: dict[str, str]
    missing: list[str]

    @classmethod
    def compare(cls, converted: Converted, expected: Mapping[str, Tensor]) -> 'ConversionReport':
        """Compare ``converted`` against a model's ``state_dict()``."""
        mapped, unmatched = [], {}
        for key, value in converted.state_dict.items():
            shape = tuple(getattr(value, 'shape', ()))
            if key not in expected:
                unmatched[key] = 'not in the model'
            elif shape != tuple(expected[key].shape):
                unmatched[key] = f'shape {shape}, the model has {tuple(expected[key].shape)}'
            else:
                mapped.append(key)
        missing = [k for k in expected if k not in converted.state_dict]
        return cls(converted.source, mapped, dict(converted.dropped), unmatched, missing)

    def summary(self, limit: int = 8) -> str:
        """One paragraph: counts, then up to ``limit`` keys of each non-empty group."""
        def some(keys: Any) -> str:
            keys = sorted(keys)
            return ', '.join(keys[:limit]) + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')

        parts = [f'{len(self.mapped)} keys mapped']
        if self.dropped:
            parts.append(f'{len(self.dropped)} dropped: ' + some(f'{k} ({why})' for k, why in self.dropped.items()))
        if self.unmatched:
            parts.append(f'{len(self.unmatched)} unmatched: '
                         + some(f'{k} ({why})' for k, why in self.unmatched.items()))
        if self.missing:
            parts.append(f'{len(self.missing)} missing: {some(self.missing)}')
        return '; '.join(parts)
