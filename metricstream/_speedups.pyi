from collections.abc import Callable

def field_columns(
    fields: list[dict[str, object]], /
) -> tuple[tuple[str, ...], tuple[list[object], ...]] | None: ...

def join_lines(
    befores: list[bytes],
    columns: list[bytes | list[bytes]],
    separators: list[bytes],
    timestamps: list[int],
    afters: bytes | list[bytes],
    /,
) -> bytes: ...
def entry_text(
    prefixes: dict[str, str],
    make_prefix: Callable[[str], str],
    format_value: Callable[[object], str],
    head: str,
    fields: dict[str, object],
    timestamp: int,
    /,
) -> str: ...
def checked_fields(
    fields: object, valid_keys: set[str], uint_type: type, max_chars: int, /
) -> dict[str, object] | None: ...
def items_key(tags: object, /) -> tuple[tuple[str, str], ...] | None: ...
def fields_needing_checks(
    dicts: list[object],
    valid_keys: set[str],
    uint_type: type,
    max_chars: int,
    excluded: frozenset[str],
    /,
) -> list[int]: ...
def event_ids(timestamps: list[int], generation: int, first: int, /) -> list[str]: ...
