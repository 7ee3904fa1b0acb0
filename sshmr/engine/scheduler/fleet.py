"""Hosts joining and leaving mid-run: drain, undrain, add. Part of the pure scheduler (see
``core``).

A drained host gets nothing new: no dispatch, no prefetch, no speculative copy. Its idle
slots retire at once (``RetireSlot``); a busy slot finishes what was dispatched to it, then
retires. A worker that comes up on a drained host retires too, and a drained host that
reconnects starts no workers. Drained hosts still count as usable (a run whose hosts are
all drained waits for an undrain or a new host; its running attempts end as usual).
Undraining starts the host's slots again once their retiring workers are gone.

An added host (``AddHost``) joins with no slots: the master connects to it
(``ConnectHost``), and ``HostUp`` brings its slots as for any host. Adding a known host
undrains it.
"""

from __future__ import annotations

from .events import AddHost, ConnectHost, DrainHost, RetireSlot, StartSlot, UndrainHost
from .state import SchedulerState, _Host


class Fleet(SchedulerState):
    """Drain, undrain and add hosts."""

    def knows_host(self, name: str) -> bool:
        return name in self._hosts

    def is_drained(self, name: str) -> bool:
        host = self._hosts.get(name)
        return host is not None and host.drained

    def add_host(self, name: str) -> bool:
        """Know ``name`` (before the run starts, e.g. a host added in an earlier part of the
        run); False if it was known already."""
        if name in self._hosts:
            return False
        self._hosts[name] = _Host()
        self._all_heard = False  # prefetch waits until it came up or failed, as at the start
        return True

    def _on_AddHost(self, now: float, ev: AddHost, out: list) -> None:
        if self.add_host(ev.host):
            if self._stopping is None:
                out.append(ConnectHost(ev.host))
        elif self._hosts[ev.host].drained:
            self._on_UndrainHost(now, UndrainHost(ev.host), out)

    def _on_DrainHost(self, now: float, ev: DrainHost, out: list) -> None:
        host = self._hosts[ev.host]
        if host.drained:
            return
        host.drained = True
        for slot in [s for s in self._slots if s[0] == ev.host]:
            state = self._slots[slot]
            self._room_del(slot)
            if state.idle:
                self._free.remove(slot)
                self._retire(slot, out)
            elif not state.attempts and not state.dying:  # a retirement already under way
                self._retire(slot, out)

    def _on_UndrainHost(self, now: float, ev: UndrainHost, out: list) -> None:
        host = self._hosts[ev.host]
        if not host.drained:
            return
        host.drained = False
        for slot, state in self._slots.items():
            if slot[0] == ev.host:
                self._sync_room(slot, state)
        if host.up and not host.quarantined and self._stopping is None:
            out.extend(StartSlot((ev.host, i)) for i in range(host.n_slots)
                       if (ev.host, i) not in self._slots and (ev.host, i) not in self._retiring
                       and (ev.host, i) not in self._retire_later)

    def _retire(self, slot: tuple[str, int], out: list) -> None:
        self._slots.pop(slot, None)
        self._retiring.add(slot)
        out.append(RetireSlot(slot))

    def _flush_retirements(self, out: list) -> None:
        """Busy slots of drained hosts that emptied during this step: retire them."""
        while self._retire_later:
            slot = self._retire_later.pop()
            self._retiring.add(slot)
            out.append(RetireSlot(slot))

    def _retired(self, slot: tuple[str, int], out: list) -> bool:
        """``SlotDown``/``SlotUp`` of a slot a drain retired: True if it was one. A slot
        retired by a drain that has been undrained since starts again."""
        if slot not in self._retiring:
            return False
        self._retiring.discard(slot)
        host = self._hosts[slot[0]]
        if (not host.drained and host.up and not host.quarantined and self._stopping is None
                and slot not in self._slots):
            out.append(StartSlot(slot))
        return True
