r"""Where the Parquet IO manager keeps each value: one injective mapping from keys to relative paths.

An unpartitioned asset is one file, its partitions are files in a folder of their own::

    ["iwatch", "transfers"]                      -> iwatch/transfers.parquet
    ["iwatch", "volume"], partition "2024-01-01" -> iwatch/volume.partitions/2024-01-01.parquet
    ["prices"], {"chain": "eth", "day": "d2"}    -> prices.partitions/eth/d2.parquet  (one folder per
                                                    dimension, in dimension-name order)
    op output (run id, step key, output name)    -> <run id>.run/<step key>/<output name>.parquet

Every asset key part, partition key, dimension value, run id and step key becomes one path segment, written
with this escape, the same on every filesystem and object store:

- ``a``-``z``, ``0``-``9``, ``_`` and ``-`` stay as they are;
- an upper-case ASCII letter becomes ``!`` and the letter in lower case (``ETH`` -> ``!e!t!h``, the convention
  of Go's module cache), so keys that differ only by case stay apart on case-insensitive filesystems;
- a dot stays in a partition key, dimension value, run id or step key unless it starts or ends the segment
  (``v1.2`` stays, ``.`` -> ``%2e``, ``..`` -> ``%2e%2e``); in an asset key part every dot is escaped;
- every other character (``/``, ``\``, ``%``, ``!``, ``:``, spaces, anything outside ASCII...) becomes
  ``%`` and two lower-case hex digits per UTF-8 byte, and an empty string becomes ``%``.

Why this is injective: the escape of a segment can be decoded back (``%xx`` is a byte, ``!x`` an upper-case
letter, everything else itself), so two different strings never give the same segment, and since its output
has no upper-case letter, not even on a filesystem that ignores case. No segment is empty, ``.`` or ``..``,
or holds a separator, so nothing leaves the base folder. An escaped asset key part never holds a dot, so the
first segment that holds one ends the asset key: ``<part>.parquet`` is the asset's file, ``<part>.partitions``
the folder of its partitions (so an asset whose partitioning changed keeps its old file beside the new folder),
and a run folder ``<id>.run`` is neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "EXTENSION",
    "asset_relative_path",
    "escape_segment",
    "legacy_asset_relative_path",
    "op_output_relative_path",
    "unescape_segment",
]

EXTENSION = ".parquet"
_RUN_SUFFIX = ".run"
_PARTITIONS_SUFFIX = ".partitions"
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def escape_segment(value: str, *, dots: bool = True) -> str:
    """Escape one key or key part into a path segment, as the module docstring describes.

    Args:
        value: The asset key part, partition key, dimension value, run id or step key.
        dots: Keep dots that neither start nor end the value (``False`` for asset key parts).

    Returns:
        A non-empty segment of lower-case ASCII letters, digits and ``_-.!%``, never ``.`` or ``..``.
    """
    if not value:
        return "%"
    out: list[str] = []
    last = len(value) - 1
    for index, char in enumerate(value):
        if char in _PLAIN:
            out.append(char)
        elif "A" <= char <= "Z":
            out.append("!" + char.lower())
        elif char == "." and dots and 0 < index < last:
            out.append(char)
        else:
            out.extend(f"%{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def unescape_segment(segment: str) -> str:
    """Invert :func:`escape_segment`.

    Raises:
        ValueError: ``segment`` is not the output of :func:`escape_segment`.
    """
    if segment == "%":
        return ""
    raw = bytearray()
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "%":
            digits = segment[index + 1 : index + 3]
            if len(digits) != 2 or not all(c in "0123456789abcdef" for c in digits):
                raise ValueError(f"bad escape at {index} in {segment!r}")
            raw.append(int(digits, 16))
            index += 3
        elif char == "!":
            letter = segment[index + 1 : index + 2]
            if not ("a" <= letter <= "z"):
                raise ValueError(f"bad upper-case escape at {index} in {segment!r}")
            raw.extend(letter.upper().encode())
            index += 2
        else:
            raw.extend(char.encode())
            index += 1
    return raw.decode("utf-8", "surrogatepass")


def _asset_parts(asset_key: Sequence[str]) -> list[str]:
    if not asset_key:
        raise ValueError("an asset key has at least one part")
    return [escape_segment(part, dots=False) for part in asset_key]


def asset_relative_path(asset_key: Sequence[str], partition: str | Mapping[str, str] | None = None) -> str:
    """The path, relative to the base folder, of an asset's file or of one of its partitions.

    Args:
        asset_key: The asset key's parts.
        partition: ``None`` for an unpartitioned asset, a partition key, or a multi-partition key as a
            mapping of dimension name to key (one folder per dimension, in dimension-name order).

    Returns:
        A ``/``-separated relative path ending in ``.parquet``.
    """
    parts = _asset_parts(asset_key)
    if partition is None:
        return "/".join(parts) + EXTENSION
    if isinstance(partition, str):
        keys = [partition]
    else:
        if not partition:
            raise ValueError("a multi-partition key has at least one dimension")
        keys = [partition[name] for name in sorted(partition)]
    folder = "/".join(parts) + _PARTITIONS_SUFFIX
    return "/".join([folder, *(escape_segment(key) for key in keys)]) + EXTENSION


def op_output_relative_path(identifier: Sequence[str]) -> str:
    """The path, relative to the base folder, of an op's output: ``<run id>.run/<step key>/<output>.parquet``.

    Args:
        identifier: Dagster's identifier of the output: run id, step key, output name (and mapping key).
    """
    if not identifier:
        raise ValueError("an op output identifier has at least one part")
    head, *rest = (escape_segment(part) for part in identifier)
    return "/".join([head + _RUN_SUFFIX, *rest]) + EXTENSION


def legacy_asset_relative_path(asset_key: Sequence[str], partition: str | Mapping[str, str] | None = None) -> str:
    """Where releases before 0.2 stored a value with an ordinary key (used only to say how to move it).

    Those releases wrote ``<key parts>.parquet`` and ``<key parts>/<partition>.parquet`` unescaped.
    """
    if partition is None:
        return "/".join(asset_key) + EXTENSION
    keys = [partition] if isinstance(partition, str) else [partition[name] for name in sorted(partition)]
    return "/".join([*asset_key, *keys]) + EXTENSION
