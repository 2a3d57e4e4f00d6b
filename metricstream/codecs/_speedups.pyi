from collections.abc import Callable

def sample_lines(
    befores: list[bytes], values: bytes, between: bytes, timestamps: list[int], after: bytes, /
) -> bytes: ...
def fields_text(
    prefixes: dict[str, str],
    make_prefix: Callable[[str], str],
    format_value: Callable[[object], str],
    fields: dict[str, object],
    /,
) -> str: ...
