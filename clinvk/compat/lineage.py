# -*- test-case-name: tests.compat.test_lineage -*-
"""
The hash chain of a chat history (docs/design/conversations.md#lineage-chain):
what lets a stateless compatibility request be recognised as the next
turn of a conversation clinvk already holds.

A history is normalised to its system text and its C{(role, text)}
messages.  Its chain starts from a root that hashes the backend, the model
and the system text, and each message extends it.  The I{points} of a
history are the chain's values after each assistant message: the places
where a conversation can go on.  A session's lineage lists its points as
I{entries}: a point, with C{@} and the CLI's id of the answer's message
where the CLI reported one, the place a native fork starts from
(docs/design/conversations.md#native-fork).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from attrs import frozen

from clinvk.compat.conversation import flatten

# Bumped when the normalisation changes: old points then match nothing,
# and their conversations start afresh rather than wrongly.
_VERSION = "clinvk-lineage-1"


def _hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        # Length-prefixed: no two different part lists hash alike.
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:32]


def root(backend: str, model: str, system: str) -> str:
    """The chain's start for a conversation on C{backend} and C{model} with C{system}."""
    return _hash(_VERSION, backend, model, system.strip())


def extend(point: str, messages: Iterable[tuple[str, str]]) -> str:
    """The chain after C{messages}, from C{point}; texts are compared stripped."""
    for role, text in messages:
        point = _hash(point, role, text.strip())
    return point


def entry(point: str, message_id: str = "") -> str:
    """A lineage entry: C{point}, marked with the CLI's C{message_id} when known."""
    return f"{point}@{message_id}" if message_id else point


def point_of(entry: str) -> str:
    """The point of a lineage entry."""
    return entry.partition("@")[0]


def message_of(entry: str) -> str:
    """The CLI's message id of a lineage entry, or C{""}."""
    return entry.partition("@")[2]


@frozen
class History:
    """
    A request's history, split where a conversation could go on.

    @ivar points: The chain's value after each assistant message, in order.
    @ivar new_input: The messages after the last assistant message: what a
        conversation that holds the rest is sent.
    @ivar seed: The whole history as one prompt, for a CLI that holds none
        of it (docs/design/openai-api.md#openai-flattening).
    """

    points: tuple[str, ...]
    new_input: tuple[tuple[str, str], ...]
    seed: str

    @property
    def prefix(self) -> str:
        """The point the new input follows, C{""} when no assistant has spoken."""
        return self.points[-1] if self.points else ""

    @property
    def prompt(self) -> str:
        """The new input as the one prompt a continued conversation is sent."""
        return flatten(self.new_input)

    def answered(self, start: str, output: str) -> str:
        """
        The point after the new input and the answer C{output}.

        @param start: The chain's value the new input follows: L{prefix},
            or the root when no assistant has spoken.
        """
        return extend(start, (*self.new_input, ("assistant", output)))


def history(start: str, messages: Sequence[tuple[str, str]]) -> History:
    """
    The L{History} of C{messages} (system messages already taken out)
    from the chain's C{start}, as L{root} gives it.
    """
    points: list[str] = []
    point = start
    last_answer = -1
    for index, message in enumerate(messages):
        point = extend(point, (message,))
        if message[0] == "assistant":
            points.append(point)
            last_answer = index
    return History(
        points=tuple(points),
        new_input=tuple(messages[last_answer + 1 :]),
        seed=flatten(messages),
    )
