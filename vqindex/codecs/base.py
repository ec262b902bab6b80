"""The shared codec pipeline (spec 1): rotate -> quantize -> pack -> factors; LUT estimators.

A codec subclass only says how to quantize a rotated vector (`_quantize`), which code sections
it writes (`Section`: a table of codewords per field value) and how its stored factors become
per-accumulator scales (`_scales`). Everything else (validation, padding, rotation, packing,
decoding, lookup tables, the scan) is written once here and in `vqindex.kernels`.
"""
import numpy as np

from ..kernels import native as _native
from .._validation import as_codes, as_vectors
from ..kernels import bits as _bits
from ..kernels import quantize as _quant
from ..kernels import scan as _scan
from ..kernels._threads import threads, worth_parallel
from .rotation import Rotation

__all__ = ["Codec", "Section", "QueryTables"]

_nullctx = __import__("contextlib").nullcontext()

METRICS = ("ip", "l2")


class Section:
    """One bitstream section of a code: `count` fields of `width` bits.

    table: float32 (2**width, c): the codeword (c coordinates) of each field value; field i
    covers coordinates [i*c, (i+1)*c) of query space `space`; its LUT sum goes to accumulator
    `acc`. Fields are grouped `group` at a time into one LUT lookup (a byte or a nibble).
    """

    def __init__(self, table, width, count, acc=0, space=0):
        self.table = np.ascontiguousarray(table, dtype=np.float32).reshape(1 << width, -1)
        self.width = int(width)
        self.count = int(count)
        self.acc = int(acc)
        self.space = int(space)
        self.coords = self.table.shape[1]
        if width in (1, 2):
            self.group = 8 // width
        else:
            self.group = 1
        self.nbytes = (self.count * self.width + 7) // 8
        self.byte_off = 0  # set by the codec layout

    @property
    def lut_width(self):
        return self.width * self.group

    @property
    def ngroups(self):
        return -(-self.count // self.group)


class QueryTables:
    """Prepared queries: rotated query vectors and their lookup tables (built on first use).

    The one query object of the search core: the codec's identity (`codec_key`; tables are
    refused by another codec), the rotated queries in every query space (`spaces`), the
    metric terms (`qnorm2`, `qdotc`), the float LUTs of the reference scan (`luts`) and the
    quantized fast-scan LUTs (`fast_luts()`, entries <= `lut_max`).
    """

    @property
    def lut_max(self):
        """Largest quantized LUT entry: 127 when the native scan adds two lookups in a byte
        (kernels.driver.scan_setup), else 255."""
        from ..kernels.driver import scan_setup
        return scan_setup()[2]

    def __init__(self, codec, xq, v, qnorm2, qdotc, num_threads=1):
        self.codec = codec
        self.xq = xq          # float32 (nq, d) raw queries
        self.v = v            # float32 (nq, D) rotated (query - reference)
        self.qnorm2 = qnorm2  # float32 (nq,) ||q - c||^2
        self.qdotc = qdotc    # float32 (nq,) <q, c>
        self.num_threads = num_threads
        self.codec_key = codec.key
        self._luts = None
        self._spaces = None
        self._fast = None

    @property
    def spaces(self):
        """float32 (n_spaces, nq, D): the rotated queries in every query space of the codec
        (space 0: v; TurboQuant_prod's space 1: its QJL projection of v)."""
        if self._spaces is None:
            self._spaces = self.codec.query_spaces(self.v, self.num_threads)
        return self._spaces

    def fast_luts(self):
        """(lut_u8 uint8 (nq, m, 16), scale, bias float32 (n_acc, nq)): the quantized
        fast-scan LUTs of the codec's scan layout (one affine map per accumulator)."""
        if self._fast is None:
            from ..kernels import driver as _drv
            lay = self.codec.scan_layout
            nq = self.v.shape[0]
            lut = np.empty((nq, lay.m, 16), np.float32)
            par = nq > 1 and worth_parallel(self.num_threads, nq * lay.m * 16)
            _drv.build_nibble_luts(self.spaces, lay.space, lay.cidx, lay.E, lut, parallel=par)
            u8 = np.empty((nq, lay.m, 16), np.uint8)
            scale = np.empty((self.codec.n_acc, nq), np.float64)
            bias = np.empty((self.codec.n_acc, nq), np.float64)
            _drv.quantize_luts(lut, lay.acc_nib, u8, scale, bias, np.float64(self.lut_max),
                               parallel=par)
            self._fast = (u8, scale.astype(np.float32), bias.astype(np.float32))
        return self._fast

    @property
    def luts(self):
        """float32 (nq, codec.lut_size): the scan LUTs (layout `codec._secs`)."""
        if self._luts is None:
            self._luts = self.codec.build_luts(self.v, self.num_threads)
        return self._luts

    def __len__(self):
        return self.v.shape[0]


class Codec:
    """Base class of the rotation-based codecs; see the module docstring."""

    #: number of accumulators (1, or 2 for TurboQuant_prod)
    n_acc = 1
    #: names of the stored float32 factors
    factor_names = ("alpha", "ell")
    bits = 0

    def __init__(self, d, code_dim=None, rotation="fast", seed=0, rotation_rounds=None):
        d = int(d)
        if d < 1:
            raise ValueError(f"dimension d must be >= 1, got {d}")
        self.d = d
        self.D = int(code_dim) if code_dim is not None else d
        self.seed = int(seed)
        self.rotation = Rotation(self.D, kind=rotation, seed=seed, rounds=rotation_rounds)
        self.center = None
        self.sections = []

    # ---------------------------------------------------------------- layout
    def _finish_layout(self):
        off = 0
        for s in self.sections:
            s.byte_off = off
            off += s.nbytes
        self._code_bytes = off
        self.n_factors = len(self.factor_names) + (1 if self.center is not None else 0)
        self.code_size = off + 4 * self.n_factors
        lut_off = 0
        rows = []
        for s in self.sections:
            nent = 1 << s.lut_width
            rows.append((s.byte_off, s.lut_width, s.ngroups, s.acc, lut_off, nent))
            lut_off += s.ngroups * nent
        self._secs = np.array(rows, dtype=np.int64).reshape(-1, 6)
        self.lut_size = lut_off
        self._group_index = {}
        self._layout_version = getattr(self, "_layout_version", 0) + 1
        self.__dict__.pop("_derived_cache", None)

    _layout_version = 0

    def _derived(self, name, build):
        """What `build()` makes from the codec's layout, built once; `_finish_layout` (the
        only place the layout changes) drops it."""
        cache = self.__dict__.setdefault("_derived_cache", {})
        if name not in cache:
            cache[name] = build()
        return cache[name]

    @property
    def key(self):
        """The codec's identity (class and every code-changing parameter): query tables carry
        it, so tables prepared by another codec are refused."""
        import json
        return self._derived("key", lambda: type(self).__name__ + json.dumps(
            self.params(), sort_keys=True))

    @property
    def scan_layout(self):
        """The fast-scan sub-code layout (codecs.layout.ScanLayout), built once."""
        from .layout import ScanLayout
        return self._derived("scan_layout", lambda: ScanLayout(self))

    @property
    def exact_tables(self):
        """(secs int64 (S, 7), tables float32): the exact estimator of kernels.driver."""
        from .layout import exact_tables
        return self._derived("exact_tables", lambda: exact_tables(self))

    @property
    def n_spaces(self):
        return 1 + max((s.space for s in self.sections), default=0)

    def query_spaces(self, v, num_threads=1):
        """float32 (n_spaces, nq, D) of rotated queries v (nq, D)."""
        spaces = self._spaces(np.ascontiguousarray(v, np.float32), num_threads)
        out = np.empty((self.n_spaces,) + v.shape, np.float32)
        for sp in range(self.n_spaces):
            out[sp] = spaces.get(sp, 0.0)
        return out

    def fold_reference(self, codes, sf, x, centroids, which, metric, num_threads=1):
        """Fold the IVF list term into the scan factors `sf` (in place).

        codes: codes (n, code_size) of the residuals x - centroids[which]; x: float32 (n, d)
        the raw vectors; centroids (L, d); which int64 (n,); metric "ip" or "l2". With
        corr = est<x - c, c> (the estimate against the vector's own centroid, exact
        decode-dot), the scan of a list with the query's tables of R q estimates
        <x - c, q - c> (a control variate: the estimate's error at c is known and removed):
        L2 adds 2 corr to ell, IP stores <x - c, c> - corr as f_c.
        """
        from ..kernels import driver as _drv
        cq = self.prepare_queries(centroids, num_threads=num_threads)
        secs, tables = self.exact_tables
        corr = np.empty(codes.shape[0], np.float32)
        with threads(num_threads):
            _drv.exact_ip_rows(codes, secs, tables, cq.spaces, np.ascontiguousarray(which, np.int64),
                               sf, self.n_acc, corr, parallel=num_threads != 1)
        n_acc = self.n_acc
        if metric == "ip":
            ref = centroids[which]
            sf[:, n_acc + 1] = np.einsum("ij,ij->i", x - ref, ref).astype(np.float32) - corr
        else:
            sf[:, n_acc] += 2.0 * corr
        return sf

    @property
    def bits_per_dim(self):
        """True cost per input dimension: code bits plus per-vector factors, divided by d."""
        return self.code_size * 8.0 / self.d

    @property
    def is_trained(self):
        return True

    def params(self):
        """Every parameter that changes the codes (saved in index files)."""
        return {"name": self.name, "d": self.d, "rotation": self.rotation.params(),
                "center": None if self.center is None else self.center.tolist()}

    def __repr__(self):
        return f"<{type(self).__name__} {self.name} d={self.d} code_size={self.code_size}>"

    # ---------------------------------------------------------------- training
    def train(self, x, center=False):
        """Optional centring on the training mean (spec 1.1, FAISS IndexEDEN); else a no-op."""
        x = as_vectors(x, self.d, "training vectors")
        if center:
            self.center = x.mean(axis=0, dtype=np.float64).astype(np.float32)
            self._finish_layout()
        return self

    # ---------------------------------------------------------------- encode / decode
    def _rotate_residuals(self, x, reference, num_threads):
        r = x
        if reference is not None:
            r = x - reference
        elif self.center is not None:
            r = x - self.center
        if self.D != self.d:
            r = np.concatenate([r, np.zeros((r.shape[0], self.D - self.d), np.float32)], axis=1)
        return self.rotation.apply(r, num_threads=num_threads)

    def encode(self, x, reference=None, num_threads=1):
        """Encode float vectors (n, d) into uint8 codes (n, code_size).

        reference: optional float32 (n, d) points subtracted first (IVF centroids, spec 1.4).
        """
        x = as_vectors(x, self.d)
        n = x.shape[0]
        if reference is not None:
            reference = as_vectors(reference, self.d, "reference")
            if reference.shape[0] != n:
                raise ValueError(f"reference has {reference.shape[0]} rows, expected {n}")
        return self._encode_trusted(x, reference, num_threads)

    def _encode_trusted(self, x, reference=None, num_threads=1):
        """`encode` of validated float32 (n, d) vectors (and references): the indexes'
        path, which validates once at the public boundary."""
        n = x.shape[0]
        codes = np.empty((n, self.code_size), np.uint8)
        factors = None
        if reference is None and self.center is None and self.D == self.d:
            with threads(num_threads):
                factors = self._encode_fused(x, codes, num_threads)
        if factors is None:
            parts = []
            for r0, r1 in self._row_chunks(n):
                ref = None if reference is None else reference[r0:r1]
                y = self._rotate_residuals(x[r0:r1], ref, num_threads)
                with threads(num_threads):
                    fields, fac = self._quantize(y, num_threads)
                    for s, f in zip(self.sections, fields):
                        # a field is an array of values, or (array, shift): bits shift.. of it
                        f, shift = f if isinstance(f, tuple) else (f, 0)
                        _bits.pack_fields_shifted(np.ascontiguousarray(f, dtype=np.uint16), shift,
                                                  s.width, codes[r0:r1], s.byte_off)
                parts.append(np.asarray(fac, np.float32))
            factors = (np.concatenate(parts) if parts
                       else np.zeros((0, len(self.factor_names)), np.float32))
        if self.center is not None and reference is None:
            fc = (x - self.center).astype(np.float64) @ self.center.astype(np.float64)
            factors = np.concatenate([factors, fc.astype(np.float32)[:, None]], axis=1)
        elif self.center is not None:
            factors = np.concatenate([factors, np.zeros((n, 1), np.float32)], axis=1)
        codes[:, self._code_bytes:] = np.ascontiguousarray(factors, dtype="<f4").view(np.uint8)
        return codes

    sa_encode = encode

    def factors(self, codes):
        """The stored float32 factors of each code, (n, n_factors)."""
        codes = as_codes(codes, self.code_size)
        return np.ascontiguousarray(codes[:, self._code_bytes:]).view("<f4").astype(np.float32)

    def fields(self, codes, num_threads=1):
        """Unpacked field values of each section: list of uint16 (n, count)."""
        codes = as_codes(codes, self.code_size)
        out = []
        with threads(num_threads):
            for s in self.sections:
                f = np.empty((codes.shape[0], s.count), np.uint16)
                _bits.unpack_fields(codes, s.byte_off, s.width, s.count, f)
                out.append(f)
        return out

    def scan_factors(self, codes):
        """float32 (n, n_acc + 2): per-accumulator scales, ell and f_c (spec 1.4)."""
        fac = self.factors(codes)
        sf = np.zeros((fac.shape[0], self.n_acc + 2), np.float32)
        sf[:, : self.n_acc + 1] = self._scales(fac)
        if self.center is not None:
            sf[:, -1] = fac[:, -1]
        return sf

    def decode_rotated(self, codes, num_threads=1):
        """Reconstruction y_hat in the rotated space, float32 (n, D)."""
        codes = as_codes(codes, self.code_size)
        return self._decode_rotated(codes, self.scan_factors(codes), num_threads)

    def _decode_rotated(self, bits, sf, num_threads=1):
        """y_hat from the packed fields `bits` (n, >= code_bytes) and scan factors sf (only
        the per-accumulator scales are read, so IVF-folded factors decode too)."""
        n = bits.shape[0]
        y = np.zeros((n, self.D), np.float32)
        extra = {}
        with threads(num_threads):
            for s in self.sections:
                if s.space == 0:
                    target = y
                else:
                    target = extra.setdefault(s.space, np.zeros((n, self.D), np.float32))
                _scan.decode_section(bits, s.byte_off, s.width, s.count, s.table,
                                     np.ascontiguousarray(sf[:, s.acc]), target)
        for space, part in extra.items():
            y += self._space_inverse(space, part, num_threads)
        return y

    def decode(self, codes, reference=None, num_threads=1):
        """Decode uint8 codes (n, code_size) into float32 vectors (n, d)."""
        codes = as_codes(codes, self.code_size)
        if reference is not None:
            reference = as_vectors(reference, self.d, "reference")
        return self._decode_parts(codes, self.scan_factors(codes), reference, num_threads)

    def _decode_parts(self, bits, sf, reference=None, num_threads=1):
        """Decode from the packed fields and the scan factors (how indexes store a code)."""
        y = self._decode_rotated(bits, sf, num_threads)
        x = self.rotation.inverse(y, num_threads=num_threads)[:, : self.d]
        if reference is not None:
            x = x + reference
        elif self.center is not None:
            x = x + self.center
        return np.ascontiguousarray(x, dtype=np.float32)

    sa_decode = decode

    # ---------------------------------------------------------------- queries
    def _space_apply(self, space, v, num_threads):
        raise NotImplementedError

    def _space_inverse(self, space, w, num_threads):
        raise NotImplementedError

    def _group_table(self, width, group):
        """(group, 2**(width*group)) field values of each LUT entry, cached per layout."""
        key = (width, group)
        if key not in self._group_index:
            u = np.arange(1 << (width * group))
            self._group_index[key] = np.stack(
                [(u >> (t * width)) & ((1 << width) - 1) for t in range(group)])
        return self._group_index[key]

    def _section_lut(self, s, vs, group):
        """LUT (nq, ngroups, 2**(width*group)) of one section, `group` fields per entry."""
        nq = vs.shape[0]
        ngroups = -(-s.count // group)
        need = ngroups * group * s.coords
        if vs.shape[1] < need:
            vs = np.concatenate([vs, np.zeros((nq, need - vs.shape[1]), np.float32)], axis=1)
        blocks = vs[:, :need].reshape(nq, ngroups, group, s.coords)
        proj = blocks @ s.table.T  # (nq, ngroups, group, 2**width)
        if group == 1:
            return np.ascontiguousarray(proj[:, :, 0, :])
        if s.width * group == 8 and group % 2 == 0:
            # byte LUT = low-nibble LUT + high-nibble LUT (256 adds instead of 256 * group)
            half = group // 2
            gi = self._group_table(s.width, half)
            nib = [proj[:, :, h * half, :][:, :, gi[0]] for h in range(2)]
            for h in range(2):
                for t in range(1, half):
                    nib[h] = nib[h] + proj[:, :, h * half + t, :][:, :, gi[t]]
            u = np.arange(256)
            return nib[0][:, :, u & 15] + nib[1][:, :, u >> 4]
        gi = self._group_table(s.width, group)
        lut = proj[:, :, 0, :][:, :, gi[0]]
        for t in range(1, group):
            lut += proj[:, :, t, :][:, :, gi[t]]
        return lut

    def _spaces(self, v, num_threads):
        spaces = {0: v}
        for s in self.sections:
            if s.space not in spaces:
                spaces[s.space] = self._space_apply(s.space, v, num_threads)
        return spaces

    def build_luts(self, v, num_threads=1):
        """Flattened LUTs float32 (nq, lut_size) of rotated queries v (nq, D)."""
        nq = v.shape[0]
        luts = np.empty((nq, self.lut_size), np.float32)
        spaces = self._spaces(v, num_threads)
        for s, row in zip(self.sections, self._secs):
            lut = self._section_lut(s, spaces[s.space], s.group)
            lo = row[4]
            luts[:, lo : lo + lut.shape[1] * lut.shape[2]] = lut.reshape(nq, -1)
        return luts

    def prepare_queries(self, xq, reference=None, num_threads=1):
        """Rotate queries once and build their lookup tables.

        reference: optional float32 (d,) point c (an IVF centroid); the tables then describe
        v = R (q - c), as the residual estimators of spec 1.4 need.
        """
        xq = as_vectors(xq, self.d, "queries")
        c = None
        if reference is not None:
            c = as_vectors(reference, self.d, "reference")[0]
        elif self.center is not None:
            c = self.center
        r = xq if c is None else xq - c
        if self.D != self.d:
            r = np.concatenate([r, np.zeros((r.shape[0], self.D - self.d), np.float32)], axis=1)
        v = self.rotation.apply(r, num_threads=num_threads)
        qnorm2 = np.einsum("ij,ij->i", r, r, dtype=np.float64).astype(np.float32)
        qdotc = (xq @ c).astype(np.float32) if c is not None else np.zeros(len(xq), np.float32)
        return QueryTables(self, xq, v, qnorm2, qdotc, num_threads)

    def _fast_prepare_args(self):
        """(rot, proj) for kernels.driver.prepare_queries_fast, or None when this codec's
        query tables need the general path (dense rotation, centre, Gaussian projection)."""
        return self._derived("fast_prepare", self._build_fast_prepare_args)

    def _build_fast_prepare_args(self):
        if self.center is not None or self.rotation.kind != "fast" or self.n_spaces > 2:
            return None
        rot = (self.rotation._signs, self.rotation._perms, np.int64(self.rotation._p))
        if self.n_spaces == 1:
            return rot, (False, rot[0], rot[1], rot[2])
        proj = getattr(self, "_proj", None)
        if proj is not None and proj.kind == "fast":
            return rot, (True, proj._signs, proj._perms, np.int64(proj._p))
        return None

    def _prepare_trusted(self, xq, num_threads=1):
        """prepare_queries for validated float32 (nq, d) queries (no reference): the internal
        path of the indexes, which validate once at their public boundary. For the fast
        rotation (the default) one compiled call makes every table."""
        # a few rows: one compiled call (row-by-row rotation); a batch: the 16-row tiled
        # rotation (SIMD, threads) then the LUT kernels; the tables are the same (tested)
        fpa = self._fast_prepare_args() if xq.shape[0] < 16 else None
        from ..kernels.driver import scan_setup
        qt_lut_max = scan_setup()[2]
        if fpa is not None:
            from ..kernels import driver as _drv
            nq = xq.shape[0]
            lay = self.scan_layout
            vsp = np.empty((self.n_spaces, nq, self.D), np.float32)
            qnorm2 = np.empty(nq, np.float32)
            u8 = np.empty((nq, lay.m, 16), np.uint8)
            scale = np.empty((self.n_acc, nq), np.float32)
            bias = np.empty((self.n_acc, nq), np.float32)
            # per query: the rotation and ~16 table entries per dimension
            par = nq > 1 and worth_parallel(num_threads, nq * self.D * 16)
            with threads(num_threads) if par else _nullctx:
                _drv.prepare_queries_fast(xq, fpa[0], fpa[1],
                                          (lay.space, lay.cidx, lay.E, lay.acc_nib), vsp,
                                          qnorm2, u8, scale, bias, np.float64(qt_lut_max),
                                          parallel=par)
            qt = QueryTables(self, xq, vsp[0], qnorm2, np.zeros(nq, np.float32), num_threads)
            qt._spaces = vsp
            qt._fast = (u8, scale, bias)
            return qt
        r = xq if self.center is None else xq - self.center
        if self.D != self.d:
            r = np.concatenate([r, np.zeros((r.shape[0], self.D - self.d), np.float32)], axis=1)
        v = self.rotation.apply(r, num_threads=num_threads)
        qnorm2 = np.einsum("ij,ij->i", r, r, dtype=np.float64).astype(np.float32)
        qdotc = ((xq @ self.center).astype(np.float32) if self.center is not None
                 else np.zeros(len(xq), np.float32))
        return QueryTables(self, xq, v, qnorm2, qdotc, num_threads)

    def estimate(self, queries, codes, metric="ip", num_threads=1):
        """Asymmetric estimates (nq, n): inner products ("ip") or squared L2 distances ("l2").

        queries: a QueryTables from `prepare_queries`, or raw float queries (nq, d).
        Computed from the LUTs and per-vector factors without decoding (spec 1.4).
        """
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
        if not isinstance(queries, QueryTables):
            queries = self.prepare_queries(queries, num_threads=num_threads)
        elif queries.codec_key != self.key:
            from ..errors import CodecMismatchError
            raise CodecMismatchError(
                f"estimate: the query tables were prepared by another codec "
                f"({queries.codec.name}, d={queries.codec.d}) than this one ({self.name}, "
                f"d={self.d}); call this codec's prepare_queries")
        codes = as_codes(codes, self.code_size)
        sf = self.scan_factors(codes)
        out = np.empty((len(queries), codes.shape[0]), np.float32)
        if metric == "l2":
            qadd, a_ell, a_ip = queries.qnorm2, 1.0, -2.0
        else:
            qadd, a_ell, a_ip = queries.qdotc, 0.0, 1.0
        with threads(num_threads):
            _scan.estimate_dense(codes, self._secs, queries.luts, sf, self.n_acc,
                                 qadd.astype(np.float32), np.float32(a_ell), np.float32(a_ip), out)
        return out

    # ---------------------------------------------------------------- subclass hooks
    def _row_chunks(self, n):
        """(r0, r1) row ranges of ~8 MB of rotated rows: rows are encoded independently, so
        large batches go chunk by chunk and the intermediates stay in cache."""
        step = max(1024, (8 << 20) // (4 * self.D))
        return [(r0, min(n, r0 + step)) for r0 in range(0, n, step)]

    def _encode_fused(self, x, codes, num_threads=1):
        """Optional one-pass encoder of raw vectors into `codes`; return factors or None."""
        return None

    def _scalar_quantize(self, y, rule):
        """Lloyd-Max scalar quantization of rotated rows with self._bounds / self.levels.

        Returns idx uint16 (n, D), alpha, ell float32 (n,) (spec 1.3/1.4; rule as in
        kernels.quantize)."""
        n = y.shape[0]
        idx = np.empty((n, self.D), np.uint16)
        alpha = np.empty(n, np.float32)
        ell = np.empty(n, np.float32)
        _quant.scalar_quantize(y, self._bounds, self.levels, rule, idx, alpha, ell)
        return idx, alpha, ell

    def _fused_scalar(self, x, codes, rule, num_threads=1):
        """One-pass fast rotation + scalar quantization of a single-section scalar codec.

        Returns (alpha, ell) float32 (n,), or None when the rotation is not the fast one.
        Uses native/encode.c when the library is built (bit-identical), numba otherwise.
        """
        args = self.rotation.fused_args()
        if args is None:
            return None
        n = x.shape[0]
        alpha = np.empty(n, np.float32)
        ell = np.empty(n, np.float32)
        if not n:
            return alpha, ell
        nat = self.rotation.native_args()
        if nat is not None:
            stats = np.empty((n, 3), np.float64)
            _native.rotate_scalar_encode(x, *nat, np.ascontiguousarray(self._bounds, np.float32),
                                         np.ascontiguousarray(self.levels, np.float64), self.bits,
                                         codes, stats, num_threads=num_threads)
            _quant.alpha_ell_rows(rule, stats, self.D, alpha, ell)
        else:
            _quant.fast_rotate_scalar_encode(x, *args, self._bounds, self.levels, rule, self.bits,
                                             codes, alpha, ell)
        return alpha, ell

    def _quantize(self, y, num_threads):
        """Return (list of field arrays, one per section), float32 factors (n, len(factor_names))."""
        raise NotImplementedError

    def _scales(self, factors):
        """float32 (n, n_acc + 1): per-accumulator scales and ell, from stored factors."""
        raise NotImplementedError
