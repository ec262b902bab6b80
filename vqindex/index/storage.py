"""ListStore: the codes of Flat (one list) and IVF (nlist lists) indexes, grown in place.

Each list owns a slot of `cap` rows in the row arrays (codes, sf, ids) and a slot of `bcap`
blocks in the fast-scan block array; its `len` rows are rows row0 .. row0+len of the row
arrays and vectors 0 .. len of its blocks. Adding rows (`reserve`, the caller writes them,
`commit`) puts them after each list's last row, and the blocks repack only from a list's last
partial block. A full list moves to a new slot of twice the size at the end of the arrays,
which grow by doubling. Removing rows writes the list's kept rows to a new slot. So adds and
removals cost O(batch + touched lists) amortized, and rows outside every list (old slots,
"holes") are reclaimed by `compact` when they outnumber the live ones.

Concurrency: a search takes a `snapshot()` (the arrays and copies of the list tables) under
the index lock and then reads without it. Writers never change a row or block that a list
range of any earlier snapshot covers: appends write past the list's end, moves and removals
write to new slots, array growth and compaction make new arrays. (The last partial block of
a list is rewritten in place with the same bytes for its old vectors.)
"""
import itertools

import numpy as np

__all__ = ["ListStore"]

BLOCK = 32
#: store versions, unique over the process: a search plan cached against one (an index's
#: one-call path) is valid while the store's version is unchanged (see ListStore.touch)
_VERSIONS = itertools.count(1)


def _round_rows(n):
    return max(BLOCK, -(-int(n) // BLOCK) * BLOCK)


class ListStore:
    def __init__(self, nlist, code_bytes, n_sf, layout=None):
        self.nlist = int(nlist)
        self.code_bytes = int(code_bytes)
        self.n_sf = int(n_sf)
        self.layout = layout
        self.codes = np.zeros((0, self.code_bytes), np.uint8)
        self.sf = np.zeros((0, self.n_sf), np.float32)
        self.ids = np.zeros(0, np.int64)
        self.row0 = np.zeros(self.nlist, np.int64)
        self.len = np.zeros(self.nlist, np.int64)
        self.cap = np.zeros(self.nlist, np.int64)
        self.used = 0          # rows handed out to slots
        self.live = 0          # rows inside lists
        self.blocks = None     # uint8 (nblocks_capacity, bstride), built on first search
        self.blk0 = np.zeros(self.nlist, np.int64)
        self.bcap = np.zeros(self.nlist, np.int64)
        self.bused = 0
        self.packed = np.zeros(self.nlist, np.int64)  # rows of each list packed in blocks
        self._lookup = None    # (sorted ids, their rows)
        self.version = next(_VERSIONS)

    def touch(self):
        """A new version: called by every change of what a search reads (rows, lists,
        blocks), after the change, so a plan cached against the old version is rebuilt."""
        self.version = next(_VERSIONS)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_sorted(cls, nlist, lists, codes, sf, ids, layout=None):
        """A store over arrays sorted by list (as files hold them); the arrays are used as
        they are (memory-mapped ones stay mapped until the first change)."""
        st = cls(nlist, codes.shape[1], sf.shape[1], layout)
        counts = np.bincount(lists, minlength=nlist).astype(np.int64) if lists.size else np.zeros(nlist, np.int64)
        st.row0 = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        st.len = counts.copy()
        st.cap = counts.copy()
        st.codes, st.sf, st.ids = codes, sf, ids
        st.used = st.live = int(counts.sum())
        return st

    # ------------------------------------------------------------------ views
    def rows(self):
        """Storage rows of every live vector, list by list (int64)."""
        if self.live == 0:
            return np.zeros(0, np.int64)
        parts = [np.arange(r, r + n, dtype=np.int64)
                 for r, n in zip(self.row0, self.len) if n]
        return np.concatenate(parts)

    def list_of_rows(self):
        """(rows, list of each row) of the live vectors."""
        rows = self.rows()
        return rows, np.repeat(np.arange(self.nlist, dtype=np.int64), self.len)

    def lists_of(self, rows):
        """The list of each live storage row (lists are disjoint row ranges)."""
        nonempty = np.flatnonzero(self.len > 0)
        order = nonempty[np.argsort(self.row0[nonempty], kind="stable")]
        return order[np.searchsorted(self.row0[order], rows, side="right") - 1]

    def lookup(self):
        """(sorted ids, rows) of the live vectors (kept up to date incrementally)."""
        if self._lookup is None:
            rows = self.rows()
            ids = self.ids[rows]
            order = np.argsort(ids, kind="stable")
            self._lookup = (ids[order], rows[order])
        return self._lookup

    def snapshot(self):
        """What a search reads: arrays and copies of the list tables (see module doc)."""
        return (self.codes, self.sf, self.ids, self.row0.copy(), self.len.copy())

    # ------------------------------------------------------------------ growth
    def _reserve_rows(self, n):
        need = self.used + n
        if need > self.codes.shape[0]:
            cap = max(need, 2 * self.codes.shape[0], 1024)
            codes = np.empty((cap, self.code_bytes), np.uint8)
            sf = np.empty((cap, self.n_sf), np.float32)
            ids = np.full(cap, -1, np.int64)
            u = self.used
            codes[:u] = self.codes[:u]
            sf[:u] = self.sf[:u]
            ids[:u] = self.ids[:u]
            self.codes, self.sf, self.ids = codes, sf, ids
        r = self.used
        self.used = need
        return r

    def _reserve_blocks(self, nb):
        need = self.bused + nb
        if need > self.blocks.shape[0]:
            cap = max(need, 2 * self.blocks.shape[0], 32)
            blocks = np.zeros((cap, self.blocks.shape[1]), np.uint8)
            blocks[: self.bused] = self.blocks[: self.bused]
            self.blocks = blocks
        b = self.bused
        self.bused = need
        return b

    def _move(self, l, cap, keep=None):
        """Copy list l (or its rows `keep`, offsets in the list) to a new slot of cap rows."""
        r_old, n = int(self.row0[l]), int(self.len[l])
        src = np.arange(r_old, r_old + n) if keep is None else r_old + keep
        m = src.shape[0]
        r = self._reserve_rows(cap)
        self.codes[r:r + m] = self.codes[src]
        self.sf[r:r + m] = self.sf[src]
        self.ids[r:r + m] = self.ids[src]
        self.row0[l], self.len[l], self.cap[l] = r, m, cap
        if self._lookup is not None:
            sids, srows = self._lookup
            if keep is None:
                at = np.searchsorted(sids, self.ids[r:r + m])
                srows[at] = np.arange(r, r + m)
            else:
                self._lookup = None
        # its blocks move with it (repacked lazily into a new block slot)
        self.packed[l] = 0
        self.bcap[l] = 0

    # ------------------------------------------------------------------ verbs
    def reserve(self, lists):
        """Destination rows of new rows (lists int64 (b,): the list of each new row).

        Every touched list gets room after its last row: a full list moves to a slot of twice
        the size; an add as large as the index rebuilds the arrays once, compactly, with each
        list's final size plus 1/8 slack. Nothing is visible to searches until `commit`."""
        b = lists.shape[0]
        counts = np.bincount(lists, minlength=self.nlist).astype(np.int64)
        final = self.len + counts
        if b >= max(self.live, 4096):
            self._rebuild(np.array([_round_rows(n + n // 8) if n else 0 for n in final],
                                   np.int64))
        else:
            for l in np.flatnonzero(final > self.cap):
                self._move(int(l), _round_rows(max(2 * self.cap[l], final[l])))
        order = np.argsort(lists, kind="stable")
        ls = lists[order]
        first = np.searchsorted(ls, ls, side="left")
        dest = np.empty(b, np.int64)
        dest[order] = self.row0[ls] + self.len[ls] + (np.arange(b) - first)
        self.touch()
        return dest

    def commit(self, lists, dest, ids):
        """Make rows written at `dest` (from `reserve`) part of their lists."""
        b = ids.shape[0]
        if b == 0:
            return
        self.len += np.bincount(lists, minlength=self.nlist).astype(np.int64)
        self.live += b
        if self._lookup is not None:
            sids, srows = self._lookup
            o2 = np.argsort(ids, kind="stable")
            at = np.searchsorted(sids, ids[o2])
            self._lookup = (np.insert(sids, at, ids[o2]), np.insert(srows, at, dest[o2]))
        self.touch()

    def _rebuild(self, caps):
        """New arrays with slot sizes `caps`, holding the current lists (compaction)."""
        tot = int(caps.sum())
        codes = np.empty((tot, self.code_bytes), np.uint8)
        sf = np.empty((tot, self.n_sf), np.float32)
        ids = np.full(tot, -1, np.int64)
        row0 = np.concatenate([[0], np.cumsum(caps)[:-1]]).astype(np.int64)
        for l in np.flatnonzero(self.len):
            a, n, r = int(self.row0[l]), int(self.len[l]), int(row0[l])
            codes[r:r + n] = self.codes[a:a + n]
            sf[r:r + n] = self.sf[a:a + n]
            ids[r:r + n] = self.ids[a:a + n]
        self.codes, self.sf, self.ids = codes, sf, ids
        self.row0, self.cap, self.used = row0, caps.copy(), tot
        self.blocks = None
        self.packed[:] = 0
        self.bcap[:] = 0
        self.bused = 0
        self._lookup = None
        self.touch()

    def remove_rows(self, rows):
        """Remove the live rows `rows` (storage rows); returns how many."""
        if rows.shape[0] == 0:
            return 0
        rows = np.unique(rows)
        which = self.lists_of(rows)
        # the fallible work first: every list's kept rows and one reservation of their new
        # slots (a reallocation copies, it changes nothing visible); then the moves
        plan = []
        for l in np.unique(which):
            drop = rows[which == l] - self.row0[l]
            keep = np.setdiff1d(np.arange(self.len[l]), drop)
            plan.append((int(l), _round_rows(keep.shape[0]) if keep.shape[0] else 0, keep))
        self._ensure_rows(sum(cap for _, cap, _ in plan))
        for l, cap, keep in plan:
            self._move(l, cap, keep)
        self.live -= rows.shape[0]
        self._lookup = None
        if self.used > 2 * self.live + 4096:
            try:
                self.compact()
            except MemoryError:  # compaction only reclaims holes; the removal is done
                pass
        self.touch()
        return int(rows.shape[0])

    def _ensure_rows(self, n):
        """Grow the row arrays so that n more rows fit without another reallocation."""
        if self.used + n > self.codes.shape[0]:
            r = self._reserve_rows(n)
            self.used = r  # reserve the capacity only

    def reset(self):
        self.__init__(self.nlist, self.code_bytes, self.n_sf, self.layout)

    def compact(self):
        """New arrays holding only the lists, each with 25 % slack."""
        self._rebuild(np.array([_round_rows(n * 1.25) if n else 0 for n in self.len], np.int64))

    # ------------------------------------------------------------------ fast-scan blocks
    def fastscan_blocks(self):
        """(blocks, blk0) with every list's rows packed (incrementally: only rows added since
        the last call, from their list's last partial block)."""
        lay = self.layout
        packed = getattr(self, "_packed_view", None)
        if packed is not None and packed[0] is self.blocks and packed[1] is lay and not (
                self.packed != self.len).any():
            return packed[0], packed[2]
        if self.blocks is None or self.blocks.shape[1] != lay.bstride:
            self.blocks = np.zeros((0, lay.bstride), np.uint8)
            self.packed[:] = 0
            self.bcap[:] = 0
            self.bused = 0
        for l in np.flatnonzero(self.packed != self.len):
            n = int(self.len[l])
            need = -(-n // BLOCK)
            if need > self.bcap[l]:
                # a new slot (twice the size); the old blocks stay for earlier snapshots
                cap = max(need, 2 * int(self.bcap[l]), 1)
                self.blk0[l] = self._reserve_blocks(cap)
                self.bcap[l] = cap
                self.packed[l] = 0
            done = int(self.packed[l]) // BLOCK * BLOCK
            r = int(self.row0[l])
            b0 = int(self.blk0[l]) + done // BLOCK
            new = lay.blocks(self.codes[r + done: r + n])
            self.blocks[b0: b0 + new.shape[0]] = new
            self.packed[l] = n
        self._packed_view = (self.blocks, lay, self.blk0.copy())
        self.touch()
        return self.blocks, self._packed_view[2]
