"""Run an awaitable now, outside any task, and let a task finish it only if it has to wait.

Python 3.12's eager tasks do this for a whole task; the hub needs it for one send: a write to an
idle stream almost never waits, and running it in place spares a task switch per subscriber.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from typing import Any


class Begun:
    """An awaitable (a coroutine, say) run at construction, in the caller, as far as it goes
    without waiting.

    If it finished there, `finished` is true and there is nothing left to do. Otherwise
    awaiting this object in a task runs the rest exactly as if the task had awaited the
    awaitable from the start (PEP 380 delegation): the task waits on the same future, a
    cancellation is thrown into the awaitable, and an error raised before the first wait is
    raised there, in the awaiting task, not in the caller that began it.
    """

    __slots__ = ("_error", "_steps", "_waiting_on", "finished")

    def __init__(self, awaitable: Awaitable[None]) -> None:
        self._steps: Generator[Any, Any, None] = awaitable.__await__()
        self._error: Exception | None = None
        self._waiting_on: Any = None
        self.finished = False
        try:
            self._waiting_on = self._steps.send(None)
        except StopIteration:
            self.finished = True
        except Exception as exc:
            self._error = exc

    def __await__(self) -> Generator[Any, Any, None]:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        steps, waiting_on = self._steps, self._waiting_on
        while not self.finished:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:
                try:
                    waiting_on = steps.throw(exc)
                except StopIteration:
                    self.finished = True
            else:
                try:
                    waiting_on = steps.send(sent)
                except StopIteration:
                    self.finished = True

    def close(self) -> None:
        """Abandon the rest: the awaitable's own cleanup runs now (GeneratorExit)."""
        self._steps.close()
