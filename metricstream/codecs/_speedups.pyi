from collections.abc import Callable

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
