"""The fence engine: a pure state machine from fixes and fences to enter/exit/inside/outside/dwell events.

No awaits and no clocks: every call takes ``now`` (processing time). Fixes go through a reorder
buffer and are evaluated in fix-time order per responder once they are older than
``now - reorder_window_s``.

Choices worth knowing:

* **Late fixes.** A fix whose ``fix_time`` is not newer than the responder's last processed fix is
  *late*: it changes no state and produces no event. It is kept in :meth:`FenceEngine.drain_late`
  (and counted) so the caller still stores it as history. A fix received more than the window after
  its fix time (``received_at``, or ``now`` when absent) but still newer than anything processed for
  that responder is evaluated normally and its events carry ``late=True``.
* **Dwell** is measured in fix time: with ``dwell_s > 0`` the first inside fix starts a pending
  visit; the first later fix still inside with ``fix_time - since >= dwell_s`` emits ``enter`` (and
  ``dwell``). Leaving earlier cancels quietly.
* **Hysteresis**: once inside (or pending), a responder leaves only when outside the fence buffered by
  ``hysteresis_m``.
* **Accuracy**: a fix whose accuracy circle reaches the boundary that would be crossed is
  ``uncertain`` and flips nothing (``inside``/``outside`` events it yields say ``uncertain=True``).
* **inside/outside** are emitted per fix when the fence asks for them: ``inside`` while inside,
  ``outside`` after an exit for as long as the responder stays outside (like Tile38, ``outside``
  follows ``exit``); responders that never entered a fence get no ``outside`` events for it.
* **Fence changes** (create, move, grow, shrink, ``applies_to`` change) re-evaluate every known
  responder's last accepted position at once; delete and expiry exit everyone inside. These events
  carry the reason and the responder's last fix time and position.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.cover import CoverIndex, PolygonCover
from geo.fence_model import DETECTS, Fence, FenceEvent, Fix, Reason, VisitState, rfc3339, to_tile38, visit_group
from geo.fence_state import INSIDE, OUTSIDE, PENDING, EngineStats, _Entry, _Probe, _Responder, _Visit
from geo.geodesy import buffer_geometry_m, distance_to_boundary_m, metres_per_degree

__all__ = ["DETECTS", "EngineStats", "Fence", "FenceEngine", "FenceEvent", "Fix", "VisitState", "rfc3339", "to_tile38"]


class FenceEngine:
    """Per responder × fence state, evaluated in fix-time order behind a reorder window."""

    def __init__(self, reorder_window_s: float = 10.0) -> None:
        if reorder_window_s < 0:
            raise ValueError("reorder_window_s must be >= 0")
        self.reorder_window = timedelta(seconds=reorder_window_s)
        self.stats = EngineStats()
        self._fences: dict[str, _Entry] = {}
        self._free_slots: list[int] = []
        self._next_slot = 0
        self._slot_fence: dict[int, str] = {}
        self._index = CoverIndex()
        self._responders: dict[str, _Responder] = {}
        self._members: dict[str, set[str]] = {}
        self._heap: list[tuple[datetime, str, int, int, Fix, bool]] = []
        self._seqs: list[int] = []
        """The ``seq`` of every buffered fix, a min-heap with lazy deletion (``_released`` counts
        released fixes per seq), so :meth:`pending_min_seq` does not scan the buffer."""
        self._released: dict[int, int] = {}
        self._counter = 0
        self._late: list[Fix] = []
        self._evaluated: set[str] = set()
        self._changed: set[tuple[str, str]] = set()
        self._near: dict[tuple[int, int], bool] = {}

    # ------------------------------------------------------------------ fences
    def fences(self) -> list[Fence]:
        return [e.fence for e in self._fences.values()]

    def fence(self, fence_id: str) -> Fence | None:
        entry = self._fences.get(fence_id)
        return entry.fence if entry else None

    def upsert_fence(self, fence: Fence, now: datetime) -> list[FenceEvent]:
        """Create or replace a fence and re-evaluate every known responder against it at once."""
        return self.upsert_fences([fence], now)

    def upsert_fences(
        self, fences: Iterable[Fence], now: datetime, covers: Mapping[str, PolygonCover] | None = None
    ) -> list[FenceEvent]:
        """Create or replace many fences, then re-evaluate every known responder against all of them
        in one vectorised pass (one H3 lookup per resolution for everyone, exact tests only on
        boundary cells). Events come fence by fence in the given order, exactly as a sequence of
        :meth:`upsert_fence` calls would produce them (fences are independent of each other).

        ``covers`` may hold an already computed :class:`PolygonCover` of a fence's geometry by fence
        id (e.g. built from stored cells); fences without one are covered here."""
        entries: list[tuple[_Entry, Reason]] = []
        for fence in fences:
            old = self._fences.get(fence.id)
            known = covers.get(fence.id) if covers else None
            cover = known if known is not None else PolygonCover(fence.geometry)
            outer = buffer_geometry_m(fence.geometry, fence.hysteresis_m) if fence.hysteresis_m > 0 else None
            if outer is not None:
                shapely.prepare(outer)
            if old is not None:
                slot = old.slot
                self._index.remove(slot)
            else:
                slot = self._free_slots.pop() if self._free_slots else self._alloc_slot()
            entry = _Entry(fence=fence, slot=slot, cover=cover, outer=outer)
            self._fences[fence.id] = entry
            self._slot_fence[slot] = fence.id
            self._index.add(slot, cover)
            entries.append((entry, "fence_moved" if old is not None else "fence_created"))
        # a fence given twice: only its last version counts (it replaced the first)
        last = {e.fence.id: i for i, (e, _) in enumerate(entries)}
        entries = [er for i, er in enumerate(entries) if last[er[0].fence.id] == i]
        return self._reevaluate(entries, now)

    def remove_fence(self, fence_id: str, now: datetime, reason: Reason = "fence_deleted") -> list[FenceEvent]:
        """Drop a fence; everyone inside gets an ``exit`` (pending visits end quietly)."""
        entry = self._fences.pop(fence_id, None)
        if entry is None:
            return []
        self._index.remove(entry.slot)
        del self._slot_fence[entry.slot]
        self._free_slots.append(entry.slot)
        events: list[FenceEvent] = []
        for rid in sorted(self._members.pop(fence_id, set())):
            resp = self._responders[rid]
            visit = resp.visits.pop(fence_id, None)
            self._changed.add((rid, fence_id))
            if visit is None or visit.state != INSIDE:
                continue
            probe = self._probe_of(rid, resp, reason)
            self._emit(events, "exit", entry, probe, now, visit.group)
        self.stats.events += len(events)
        return events

    def expire(self, now: datetime) -> list[FenceEvent]:
        """End fences whose ``valid_until`` is at or before ``now`` (reason ``fence_expired``)."""
        due = sorted(
            (e.fence.valid_until, fid)
            for fid, e in self._fences.items()
            if e.fence.valid_until is not None and e.fence.valid_until <= now
        )
        events: list[FenceEvent] = []
        for _, fid in due:
            events.extend(self.remove_fence(fid, now, reason="fence_expired"))
        return events

    # ------------------------------------------------------------------ fixes
    def add_fixes(self, fixes: Iterable[Fix], now: datetime) -> list[FenceEvent]:
        """Buffer fixes, then release whatever the window allows (same as calling :meth:`advance`)."""
        self.buffer(fixes, now)
        return self.advance(now)

    def buffer(self, fixes: Iterable[Fix], now: datetime) -> None:
        """Put fixes in the reorder buffer without evaluating anything (``now`` tells a fix that
        arrived late from one that did not when it has no ``received_at``); :meth:`advance` releases."""
        for fix in fixes:
            self.stats.fixes_received += 1
            resp = self._responders.get(fix.responder_id)
            if resp is not None and fix.fix_time <= resp.fix_time:
                self._late.append(fix)
                self.stats.late_fixes += 1
                continue
            self._counter += 1
            arrived = fix.received_at if fix.received_at is not None else now
            arrived_late = arrived - fix.fix_time > self.reorder_window
            heapq.heappush(self._heap, (fix.fix_time, fix.responder_id, fix.seq, self._counter, fix, arrived_late))
            heapq.heappush(self._seqs, fix.seq)

    def advance(self, now: datetime, limit: int | None = None) -> list[FenceEvent]:
        """Expire fences, then evaluate buffered fixes with ``fix_time <= now - window`` in order.

        ``limit``: evaluate at most that many (the earliest); the rest stay buffered for the next
        call (see :meth:`due`), so a caller can interleave other work. Evaluating in several calls
        gives the same events as in one."""
        events = self.expire(now)
        cutoff = now - self.reorder_window
        released: list[tuple[Fix, bool]] = []
        heap = self._heap
        room = len(heap) if limit is None else limit
        gone = self._released
        while heap and heap[0][0] <= cutoff and len(released) < room:
            item = heapq.heappop(heap)
            released.append((item[4], item[5]))
            gone[item[2]] = gone.get(item[2], 0) + 1
        if released:
            events.extend(self._evaluate(released, now))
        return events

    def pending_fixes(self) -> int:
        return len(self._heap)

    def due(self, now: datetime) -> bool:
        """Whether a buffered fix is ready to be evaluated at ``now``."""
        return bool(self._heap) and self._heap[0][0] <= now - self.reorder_window

    def next_release(self) -> datetime | None:
        """When the earliest buffered fix leaves the reorder window (:meth:`advance` at or after
        this time evaluates it), or None when nothing is buffered."""
        return self._heap[0][0] + self.reorder_window if self._heap else None

    def pending_min_seq(self) -> int | None:
        """Smallest ingest ``seq`` still buffered: a safe "consumed up to" checkpoint is below it."""
        seqs, gone = self._seqs, self._released
        while seqs:
            seq = seqs[0]
            left = gone.get(seq)
            if not left:
                return seq
            heapq.heappop(seqs)
            if left == 1:
                del gone[seq]
            else:
                gone[seq] = left - 1
        return None

    def drain_late(self) -> list[Fix]:
        """Late (out-of-order) fixes seen since the last call; they changed nothing."""
        late, self._late = self._late, []
        return late

    # ------------------------------------------------------------------ state export
    def snapshot(self) -> list[dict[str, Any]]:
        """One plain dict per open (responder, fence) visit, for ``fence_states``."""
        rows: list[dict[str, Any]] = []
        for rid in sorted(self._responders):
            for fid, v in sorted(self._responders[rid].visits.items()):
                rows.append(
                    {
                        "responder_id": rid,
                        "fence_id": fid,
                        "state": v.state,
                        "since": v.since,
                        "group": v.group,
                        "last_fix_time": v.last_fix_time,
                        "fence_version": v.fence_version,
                    }
                )
        return rows

    def restore(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace all visits with ``rows`` from :meth:`snapshot` (positions must be loaded first or
        are created from the visit's last fix time with an unknown position)."""
        for known in self._responders.values():
            known.visits.clear()
        self._members.clear()
        for row in rows:
            rid, fid = str(row["responder_id"]), str(row["fence_id"])
            resp = self._responders.get(rid)
            if resp is None:
                resp = _Responder(None, math.nan, math.nan, row["last_fix_time"], None, 0)
                self._responders[rid] = resp
            resp.visits[fid] = _Visit(
                state=str(row["state"]),
                since=row["since"],
                group=str(row["group"]),
                last_fix_time=row["last_fix_time"],
                fence_version=int(row.get("fence_version", 0)),
            )
            self._members.setdefault(fid, set()).add(rid)

    def positions(self) -> list[dict[str, Any]]:
        """Last accepted position per responder."""
        return [
            {
                "responder_id": rid,
                "team_id": r.team_id,
                "lon": r.lon,
                "lat": r.lat,
                "fix_time": r.fix_time,
                "accuracy_m": r.accuracy_m,
                "seq": r.seq,
            }
            for rid, r in sorted(self._responders.items())
        ]

    def load_positions(self, rows: Iterable[Fix | Mapping[str, Any]]) -> None:
        """Seed last positions (e.g. from ``latest_positions``) without evaluating anything."""
        for row in rows:
            fix = row if isinstance(row, Fix) else Fix(**{k: row[k] for k in row if k in Fix.__struct_fields__})
            resp = self._responders.get(fix.responder_id)
            if resp is None:
                self._responders[fix.responder_id] = _Responder(
                    fix.team_id, fix.lon, fix.lat, fix.fix_time, fix.accuracy_m, fix.seq
                )
            elif fix.fix_time > resp.fix_time:
                resp.team_id, resp.lon, resp.lat = fix.team_id, fix.lon, fix.lat
                resp.fix_time, resp.accuracy_m, resp.seq = fix.fix_time, fix.accuracy_m, fix.seq

    def covering_cells(self) -> int:
        """Total H3 cells indexed over all fences (interior + boundary)."""
        return sum(len(e.cover) for e in self._fences.values())

    def inside(self, fence_id: str) -> list[str]:
        """Responders currently inside a fence."""
        return sorted(
            rid for rid in self._members.get(fence_id, ()) if self._responders[rid].visits[fence_id].state == INSIDE
        )

    def fences_of(self, responder_id: str) -> list[str]:
        resp = self._responders.get(responder_id)
        if resp is None:
            return []
        return sorted(fid for fid, v in resp.visits.items() if v.state == INSIDE)

    def visits_of(self, responder_ids: Iterable[str]) -> dict[str, dict[str, VisitState]]:
        """``responder -> fence -> VisitState`` for the given responders (``{}`` for unknown ones)."""
        out: dict[str, dict[str, VisitState]] = {}
        responders = self._responders
        for rid in responder_ids:
            resp = responders.get(rid)
            out[rid] = (
                {
                    fid: VisitState(v.state, v.since, v.group, v.last_fix_time, v.fence_version)
                    for fid, v in resp.visits.items()
                }
                if resp is not None
                else {}
            )
        return out

    def all_visits(self) -> dict[str, dict[str, VisitState]]:
        """:meth:`visits_of` every responder that has at least one visit."""
        return self.visits_of([rid for rid, r in self._responders.items() if r.visits])

    def positions_of(self, responder_ids: Iterable[str]) -> list[Fix]:
        """Last accepted position of the given responders (unknown ones and unknown positions skipped)."""
        out: list[Fix] = []
        responders = self._responders
        for rid in responder_ids:
            r = responders.get(rid)
            if r is None or math.isnan(r.lon):
                continue
            out.append(
                Fix(responder_id=rid, team_id=r.team_id, fix_time=r.fix_time, lon=r.lon, lat=r.lat,
                    accuracy_m=r.accuracy_m, seq=r.seq)
            )  # fmt: skip
        return out

    def drain_evaluated(self) -> set[str]:
        """Responders with a fix evaluated (accepted) since the last call: whose position and visits
        may have changed, i.e. what an incremental persister has to look at."""
        out, self._evaluated = self._evaluated, set()
        return out

    def drain_changed(self) -> set[tuple[str, str]]:
        """``(responder, fence)`` pairs whose visit was created, changed (state, since, group or
        fence version; not merely ``last_fix_time``) or dropped since the last call: all an
        incremental persister has to write (see :meth:`visit_of`). A pair may be listed although
        it ended as it began (a visit opened and dropped again); :meth:`restore` marks nothing."""
        out, self._changed = self._changed, set()
        return out

    def visit_of(self, responder_id: str, fence_id: str) -> VisitState | None:
        """The open visit of one responder in one fence, or None."""
        resp = self._responders.get(responder_id)
        v = resp.visits.get(fence_id) if resp is not None else None
        if v is None:
            return None
        return VisitState(v.state, v.since, v.group, v.last_fix_time, v.fence_version)

    # ------------------------------------------------------------------ internals
    def _alloc_slot(self) -> int:
        self._next_slot += 1
        return self._next_slot - 1

    def _probe_of(self, rid: str, resp: _Responder, reason: Reason) -> _Probe:
        return _Probe(rid, resp.team_id, resp.fix_time, resp.lon, resp.lat, resp.accuracy_m, None, False, reason)

    def _evaluate(self, released: list[tuple[Fix, bool]], now: datetime) -> list[FenceEvent]:
        accepted: list[tuple[Fix, bool]] = []
        last_time: dict[str, datetime] = {}
        for fix, arrived_late in released:
            prev = last_time.get(fix.responder_id)
            if prev is None:
                resp = self._responders.get(fix.responder_id)
                prev = resp.fix_time if resp is not None else None
            if prev is not None and fix.fix_time <= prev:
                self._late.append(fix)
                self.stats.late_fixes += 1
                continue
            last_time[fix.responder_id] = fix.fix_time
            accepted.append((fix, arrived_late))
        self._evaluated.update(last_time)
        self.stats.batches += 1
        if not accepted:
            return []
        n = len(accepted)
        self.stats.fixes_evaluated += n
        self.stats.brute_force_pairs += n * len(self._fences)
        lons = np.fromiter((f.lon for f, _ in accepted), dtype=np.float64, count=n)
        lats = np.fromiter((f.lat for f, _ in accepted), dtype=np.float64, count=n)
        inside_by_fix = self._inside_pairs(lons, lats)
        self._near = self._near_edges(accepted, inside_by_fix, lons, lats)

        events: list[FenceEvent] = []
        for i, (fix, arrived_late) in enumerate(accepted):
            resp = self._responders.get(fix.responder_id)
            if resp is None:
                resp = _Responder(fix.team_id, fix.lon, fix.lat, fix.fix_time, fix.accuracy_m, fix.seq)
                self._responders[fix.responder_id] = resp
            inside_slots = inside_by_fix.get(i, ())
            relevant = set(resp.visits)
            relevant.update(self._slot_fence[s] for s in inside_slots)
            self.stats.candidate_pairs += len(relevant) - len(inside_slots)
            probe: _Probe | None = None
            for fid in sorted(relevant):
                entry = self._fences.get(fid)
                if entry is None:
                    resp.visits.pop(fid, None)
                    self._changed.add((fix.responder_id, fid))
                    continue
                in_plain = entry.slot in inside_slots
                visit = resp.visits.get(fid)
                fence = entry.fence
                if (
                    in_plain
                    and visit is not None
                    and visit.state == INSIDE
                    and "inside" not in fence.detect
                    and fence.applies(fix.responder_id, fix.team_id)
                ):
                    # still inside, nothing to emit: what _step would do, without its bookkeeping
                    visit.last_fix_time = fix.fix_time
                    continue
                if probe is None:
                    probe = _Probe(
                        fix.responder_id, fix.team_id, fix.fix_time, fix.lon, fix.lat, fix.accuracy_m, fix.seq,
                        arrived_late, "fix", i,
                    )  # fmt: skip
                self._step(entry, resp, probe, in_plain, None, now, events, per_fix=True)
            resp.team_id, resp.lon, resp.lat = fix.team_id, fix.lon, fix.lat
            resp.fix_time, resp.accuracy_m, resp.seq = fix.fix_time, fix.accuracy_m, fix.seq
        self._near = {}
        self.stats.events += len(events)
        return events

    def _near_edges(
        self,
        accepted: list[tuple[Fix, bool]],
        inside_by_fix: dict[int, set[int]],
        lons: np.ndarray[Any, Any],
        lats: np.ndarray[Any, Any],
    ) -> dict[tuple[int, int], bool]:
        """``(fix index, slot) -> accuracy circle may reach the fence boundary`` for the fixes that
        would enter a fence (inside it, no open visit), in one vectorised ``dwithin`` on prepared
        boundaries; :meth:`_uncertain` then runs the metric test only where this says True."""
        idx: list[int] = []
        slots: list[int] = []
        responders, slot_fence = self._responders, self._slot_fence
        for i, inside in inside_by_fix.items():
            fix = accepted[i][0]
            acc = fix.accuracy_m
            if acc is None or not acc > 0:
                continue
            resp = responders.get(fix.responder_id)
            for slot in inside:
                visit = resp.visits.get(slot_fence[slot]) if resp is not None else None
                if visit is None or visit.state == OUTSIDE:
                    idx.append(i)
                    slots.append(slot)
        accs = [accepted[i][0].accuracy_m or 0.0 for i in idx]
        return self._near_pairs(idx, slots, accs, lons, lats)

    def _near_pairs(
        self,
        idx: list[int],
        slots: list[int],
        accs: list[float],
        lons: np.ndarray[Any, Any],
        lats: np.ndarray[Any, Any],
    ) -> dict[tuple[int, int], bool]:
        """``(point index, slot) -> within the accuracy radius of the fence boundary, or maybe``."""
        if not idx:
            return {}
        at = np.asarray(idx, dtype=np.int64)
        phi = np.radians(lats[at])
        m_lat = 111_132.92 - 559.82 * np.cos(2 * phi) + 1.175 * np.cos(4 * phi)
        m_lon = np.maximum(111_412.84 * np.cos(phi) - 93.5 * np.cos(3 * phi) + 0.118 * np.cos(5 * phi), 1e-3)
        pad_deg = np.asarray(accs, dtype=np.float64) / np.minimum(
            m_lon, m_lat
        )  # the widest the circle can be in degrees
        edges = np.empty(len(slots), dtype=object)
        edges[:] = [self._edge(self._fences[self._slot_fence[s]], False) for s in slots]
        near = shapely.dwithin(edges, shapely.points(lons[at], lats[at]), pad_deg)
        return dict(zip(zip(idx, slots, strict=True), near.tolist(), strict=True))

    @staticmethod
    def _edge(entry: _Entry, outer: bool) -> BaseGeometry:
        """Prepared boundary of the fence (or of its hysteresis buffer when ``outer``), cached."""
        edge = entry.edges.get(outer)
        if edge is None:
            geom = entry.outer if outer and entry.outer is not None else entry.fence.geometry
            edge = entry.edges[outer] = geom.boundary
            shapely.prepare(edge)
        return edge

    def _inside_pairs(self, lons: np.ndarray[Any, Any], lats: np.ndarray[Any, Any]) -> dict[int, set[int]]:
        """Fix index -> slots whose fence contains the fix (prefilter + exact test on boundary cells)."""
        pts, slots, candidates, exact = _contained(self._index, lons, lats)
        self.stats.candidate_pairs += candidates
        self.stats.exact_tests += exact
        inside: dict[int, set[int]] = {}
        for p, s in zip(pts.tolist(), slots.tolist(), strict=True):
            inside.setdefault(p, set()).add(s)
        return inside

    def _reevaluate(self, entries: list[tuple[_Entry, Reason]], now: datetime) -> list[FenceEvent]:
        """Evaluate every known responder's last position against (new) fence geometries at once."""
        self.stats.reevaluations += len(entries)
        rids = [rid for rid, r in self._responders.items() if not math.isnan(r.lon)]
        events: list[FenceEvent] = []
        if not rids or not entries:
            return events
        resps = [self._responders[rid] for rid in rids]
        lons = np.fromiter((r.lon for r in resps), dtype=np.float64, count=len(resps))
        lats = np.fromiter((r.lat for r in resps), dtype=np.float64, count=len(resps))
        inside_of: dict[int, set[int]] = {}
        if len(entries) == 1:
            entry = entries[0][0]
            inside_of[entry.slot] = set(np.flatnonzero(entry.cover.contains(lons, lats)).tolist())
        else:
            # the engine's own index already holds these covers (added above): its candidate pairs,
            # kept to the changed fences, instead of indexing every cell of the batch a second time
            wanted = np.fromiter((entry.slot for entry, _ in entries), dtype=np.int64, count=len(entries))
            pts, slots, _, _ = _contained(self._index, lons, lats, only=wanted)
            for p, s in zip(pts.tolist(), slots.tolist(), strict=True):
                inside_of.setdefault(s, set()).add(p)
        # the accuracy test of everyone who would enter, for all fences in one vectorised call
        near_idx: list[int] = []
        near_slots: list[int] = []
        near_accs: list[float] = []
        for entry, _ in entries:
            fid = entry.fence.id
            for i in inside_of.get(entry.slot, ()):
                acc = resps[i].accuracy_m
                visit = resps[i].visits.get(fid)
                if acc and acc > 0 and (visit is None or visit.state == OUTSIDE):
                    near_idx.append(i)
                    near_slots.append(entry.slot)
                    near_accs.append(acc)
        self._near = self._near_pairs(near_idx, near_slots, near_accs, lons, lats)
        position_of = {rid: i for i, rid in enumerate(rids)} if self._members else {}
        for entry, reason in entries:
            in_plain = inside_of.get(entry.slot, set())
            members = self._members.get(entry.fence.id, set())
            todo = sorted(in_plain | {position_of[rid] for rid in members if rid in position_of})
            in_outer: set[int] = set()
            if entry.outer is not None and todo:
                idx = np.asarray(todo, dtype=np.int64)
                in_outer = set(idx[shapely.contains_xy(entry.outer, lons[idx], lats[idx])].tolist())
            for i in todo:
                probe = self._probe_of(rids[i], resps[i], reason)
                probe.index = i
                inside = i in in_plain
                self._step(entry, resps[i], probe, inside, inside or i in in_outer, now, events, per_fix=False)
        self._near = {}
        self.stats.events += len(events)
        return events

    def _uncertain(self, entry: _Entry, outer: bool, probe: _Probe) -> bool:
        """Whether the fix's accuracy circle reaches the boundary (of the hysteresis buffer when
        ``outer``). A prepared ``dwithin`` on the cached boundary, with the radius in degrees taken
        at its widest (so it never says "far" wrongly), settles most fixes before the metric test."""
        acc = probe.accuracy_m
        if acc is None or not acc > 0:
            return False
        geom: BaseGeometry = entry.outer if outer and entry.outer is not None else entry.fence.geometry
        near = None if outer or probe.index < 0 else self._near.get((probe.index, entry.slot))
        if near is None:
            m_lon, m_lat = metres_per_degree(probe.lat)
            near = bool(
                shapely.dwithin(self._edge(entry, outer), shapely.Point(probe.lon, probe.lat), acc / min(m_lon, m_lat))
            )
        if not near:
            return False
        return distance_to_boundary_m(geom, probe.lon, probe.lat, acc) < acc

    def _step(
        self,
        entry: _Entry,
        resp: _Responder,
        probe: _Probe,
        in_plain: bool,
        in_outer: bool | None,
        now: datetime,
        events: list[FenceEvent],
        *,
        per_fix: bool,
    ) -> None:
        """One responder against one fence; records the pair in :meth:`drain_changed` when its
        persisted part (state, since, group, fence version) changed."""
        fid = entry.fence.id
        before = resp.visits.get(fid)
        key = None if before is None else (before.state, before.since, before.fence_version)
        self._transition(entry, resp, probe, in_plain, in_outer, now, events, per_fix=per_fix)
        after = resp.visits.get(fid)
        if after is not before or (after is not None and key != (after.state, after.since, after.fence_version)):
            self._changed.add((probe.responder_id, fid))

    def _transition(
        self,
        entry: _Entry,
        resp: _Responder,
        probe: _Probe,
        in_plain: bool,
        in_outer: bool | None,
        now: datetime,
        events: list[FenceEvent],
        *,
        per_fix: bool,
    ) -> None:
        fence = entry.fence
        fid = fence.id
        applicable = fence.applies(probe.responder_id, probe.team_id)
        visit = resp.visits.get(fid)
        state = visit.state if visit is not None else OUTSIDE
        if visit is not None and state in (INSIDE, PENDING):
            if not applicable:
                in_region = False
            elif in_plain:
                in_region = True
            elif in_outer is not None:
                in_region = in_outer
            else:
                in_region = entry.outer is not None and bool(shapely.contains_xy(entry.outer, probe.lon, probe.lat))
            if in_region:
                if state == PENDING and probe.fix_time - visit.since >= timedelta(seconds=fence.dwell_s):
                    self._enter(events, entry, resp, probe, now, visit)
                elif state == INSIDE and per_fix:
                    self._emit(events, "inside", entry, probe, now, visit.group)
                visit.last_fix_time = probe.fix_time
                return
            if applicable and self._uncertain(entry, True, probe):
                if state == INSIDE and per_fix:
                    self._emit(events, "inside", entry, probe, now, visit.group, uncertain=True)
                visit.last_fix_time = probe.fix_time
                return
            if state == INSIDE:
                self._emit(events, "exit", entry, probe, now, visit.group)
                self._emit(events, "outside", entry, probe, now, visit.group)
                if "outside" in fence.detect:
                    visit.state, visit.last_fix_time = OUTSIDE, probe.fix_time
                    return
            self._drop_visit(resp, probe.responder_id, fid)
            return
        # currently outside (no visit, or an outside visit kept for "outside" events)
        if in_plain and applicable:
            if self._uncertain(entry, False, probe):
                if visit is not None and per_fix:
                    self._emit(events, "outside", entry, probe, now, visit.group, uncertain=True)
                return
            group = visit_group(fid, probe.responder_id, probe.fix_time)
            new = _Visit(PENDING, probe.fix_time, group, probe.fix_time, fence.version)
            resp.visits[fid] = new
            self._members.setdefault(fid, set()).add(probe.responder_id)
            if fence.dwell_s <= 0:
                self._enter(events, entry, resp, probe, now, new)
            return
        if visit is not None:
            if per_fix:
                self._emit(events, "outside", entry, probe, now, visit.group)
            visit.last_fix_time = probe.fix_time

    def _enter(
        self,
        events: list[FenceEvent],
        entry: _Entry,
        resp: _Responder,
        probe: _Probe,
        now: datetime,
        visit: _Visit,
    ) -> None:
        dwelled = visit.state == PENDING and entry.fence.dwell_s > 0
        visit.state = INSIDE
        visit.fence_version = entry.fence.version
        self._emit(events, "enter", entry, probe, now, visit.group, since=visit.since)
        if dwelled:
            self._emit(events, "dwell", entry, probe, now, visit.group, since=visit.since)
        self._emit(events, "inside", entry, probe, now, visit.group, since=visit.since)

    def _drop_visit(self, resp: _Responder, rid: str, fid: str) -> None:
        resp.visits.pop(fid, None)
        members = self._members.get(fid)
        if members is not None:
            members.discard(rid)

    def _emit(
        self,
        events: list[FenceEvent],
        detect: str,
        entry: _Entry,
        probe: _Probe,
        now: datetime,
        group: str,
        *,
        uncertain: bool = False,
        since: datetime | None = None,
    ) -> None:
        fence = entry.fence
        if detect not in fence.detect:
            return
        events.append(
            FenceEvent(
                detect=detect,
                fence_id=fence.id,
                fence_kind=fence.kind,
                responder_id=probe.responder_id,
                fix_time=probe.fix_time,
                time=now,
                lon=probe.lon,
                lat=probe.lat,
                group=group,
                late=probe.late,
                uncertain=uncertain,
                reason=probe.reason,
                meta=fence.meta,
                fence_name=fence.name,
                fence_version=fence.version,
                seq=probe.seq,
                since=since,
            )
        )


def _contained(
    index: CoverIndex,
    lons: np.ndarray[Any, Any],
    lats: np.ndarray[Any, Any],
    only: np.ndarray[Any, Any] | None = None,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], int, int]:
    """``(point_index, key)`` pairs where the indexed cover's polygon contains the point, plus the
    candidate and exact-test counts: interior cells are hits, boundary cells get one vectorised
    ``contains_xy`` per cover. ``only``: keep to these keys."""
    pts, keys, interior = index.candidates(lons, lats)
    if only is not None:
        wanted = np.isin(keys, only)
        pts, keys, interior = pts[wanted], keys[wanted], interior[wanted]
    keep = interior.copy()
    boundary = np.flatnonzero(~interior)
    if boundary.size:
        # one elementwise call over every boundary pair (each with its cover's prepared polygon)
        # instead of one call per cover: most covers have one or two points in a batch
        cover = index.cover
        geoms = np.fromiter(
            (cover(k).geometry for k in keys[boundary].tolist()), dtype=object, count=int(boundary.size)
        )
        idx = pts[boundary]
        keep[boundary[shapely.contains_xy(geoms, lons[idx], lats[idx])]] = True
    return pts[keep], keys[keep], int(pts.size), int(boundary.size)
