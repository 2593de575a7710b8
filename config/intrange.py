"""Integers too large for their column are an error, never a different number.

With server-side binding (DATABASE_SERVER_SIDE_BINDING, the default), Django sends an
IntegerField's value as psycopg's Int4 (Int2, Int8 for the other sizes), and psycopg's C dumpers
pack it into 4 bytes without a check: `update(stock=2**40)` stored 0. An event from another
release, or a bad payload, would then write a wrong number silently. These dumpers check the
range first and raise psycopg's DataError (Django's DataError: "integer out of range", the same
error PostgreSQL gives for arithmetic that overflows), which the consumers dead-letter at once.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_integer_ranges"]


def check_integer_ranges() -> None:
    """Register the checking dumpers for every new psycopg connection (idempotent)."""
    try:
        import psycopg
        from psycopg.adapt import Dumper, PyFormat
        from psycopg.types import numeric
    except ImportError:  # no psycopg: no PostgreSQL
        return
    for kind, bits in ((numeric.Int2, 16), (numeric.Int4, 32), (numeric.Int8, 64)):
        for fmt in (PyFormat.BINARY, PyFormat.TEXT):
            inner = psycopg.adapters.get_dumper(kind, fmt)
            if getattr(inner, "checks_range", False):
                continue
            low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

            class Checked(Dumper):
                checks_range = True
                _inner_class, _low, _high, _bits = inner, low, high, bits
                format = inner.format
                oid = inner.oid

                def __init__(self, cls: type, context: Any = None) -> None:
                    super().__init__(cls, context)
                    self._inner = self._inner_class(cls, context)

                def dump(self, obj: Any) -> Any:
                    if not self._low <= obj <= self._high:
                        raise psycopg.DataError(f"integer out of range: {obj} does not fit {self._bits} bits")
                    return self._inner.dump(obj)

                def quote(self, obj: Any) -> Any:
                    if not self._low <= obj <= self._high:
                        raise psycopg.DataError(f"integer out of range: {obj} does not fit {self._bits} bits")
                    return self._inner.quote(obj)

            Checked.__name__ = f"Checked{kind.__name__}{'Binary' if fmt == PyFormat.BINARY else ''}Dumper"
            psycopg.adapters.register_dumper(kind, Checked)
