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
def fields_text(
    prefixes: dict[str, str],
    make_prefix: Callable[[str], str],
    format_value: Callable[[object], str],
    fields: dict[str, object],
    /,
) -> str: ...
