"""Named registries: how a string name (a parametrization, an objective term, a peer
method of a comparison) finds its object, with one error for an unknown name."""

from __future__ import annotations

from typing import Callable, Dict, Generic, Iterator, Tuple, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered mapping from names to entries, filled by :meth:`register`;
    ``kind`` says what the entries are, for error messages (``"parametrization"``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that files its function or class under ``name``."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered already")
            self._entries[name] = entry
            return entry

        return add

    @property
    def names(self) -> Tuple[str, ...]:
        """The names, in registration order."""
        return tuple(self._entries)

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {', '.join(self._entries)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
