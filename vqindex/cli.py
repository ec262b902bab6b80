"""`vqindex-bench`: recall/QPS sweeps against peers, codec distortion and encode time.

    vqindex-bench sweep --dataset pypi-minilm-384-angular --methods vqindex,faiss,hnswlib \\
        --threads 1 --k 10 --out /tmp/sweep          # --resume continues a killed sweep
    vqindex-bench summarize /tmp/sweep      # summary.md + recall_qps.png again from results.json
    vqindex-bench compare A/results.json B/results.json     # QPS ratios at recall thresholds
    vqindex-bench datasets                  # known data set names, which are cached here
    vqindex-bench distortion --dataset glove-50-angular-100k --bits 1,2,3,4 --n 20000 --out DIR
    vqindex-bench encode-time --dims 200,1536,3072 --n 100000 --bits 4 --out DIR
    vqindex-bench warmup                    # compile every numba kernel once after install
    vqindex-bench config                    # versions, native backend, CPU, numba cache

Everything runs from the installed package (vqindex.bench: the sweep, one adapter module per
peer, the codec benchmark). Exit status: 0 ok, 1 when a configuration failed (its error is
printed and recorded in results.json), 2 for a user error (unknown data set, bad
arguments: one line on stderr).
"""
import argparse
import json
import os
import sys

__all__ = ["main", "build_parser"]

PROG = "vqindex-bench"


METHODS = ("vqindex", "faiss", "hnswlib", "rabitqlib", "turbovec", "scann", "usearch")


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _csv(s):
    return [t.strip() for t in s.split(",") if t.strip()]


def _ints(s):
    try:
        return [int(t) for t in _csv(s)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CLIError(message)


def build_parser():
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    s = sub.add_parser("sweep", help="recall / QPS sweep of vqindex and peers on one data set",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--dataset", required=True, help="data set name or path (vqindex.datasets.load)")
    s.add_argument("--n", type=int, default=None, help="random subset of n train vectors (ground truth recomputed)")
    s.add_argument("--metric", default=None, choices=("euclidean", "l2", "angular", "cosine", "ip", "dot"),
                   help="metric of raw .npy/.fvecs vectors (default: euclidean; HDF5 files carry their own)")
    s.add_argument("--methods", default="vqindex,faiss,hnswlib,rabitqlib,turbovec",
                   help=f"comma list of {', '.join(METHODS)}; a peer whose library is missing is "
                        f"skipped with a note (default: %(default)s)")
    s.add_argument("--threads", type=int, default=1, help="search threads for every method (default: 1)")
    s.add_argument("--build-threads", type=int, default=None,
                   help="build threads (default: every core; recorded as build_threads)")
    s.add_argument("--k", type=int, default=10, help="neighbours per query (default: 10)")
    s.add_argument("--out", default=None, help="directory for results.json, summary.md, recall_qps.png")
    s.add_argument("--configs", nargs="+", default=None, metavar="METHOD:INDEX[:param=v1,v2...]",
                   help="configs replacing the defaults of the methods they name, e.g. "
                        "'vqindex:IVF1024,BQ4,RFlat:nprobe=16,32:k_factor=2,4' 'hnswlib:M16:ef=32,64'")
    s.add_argument("--quick", action="store_true", help="1-2 configs per method, 50 queries (a smoke test)")
    s.add_argument("--nq", type=int, default=1000, help="batch queries (default: 1000)")
    s.add_argument("--nq-slow", type=int, default=200, help="batch queries for flat scans (default: 200)")
    s.add_argument("--single-cap", type=int, default=1000,
                   help="max one-query-per-call searches per point (default: 1000)")
    s.add_argument("--single-cap-slow", type=int, default=200,
                   help="the same for flat scans (default: 200)")
    s.add_argument("--single-budget", type=float, default=2.0,
                   help="stop single queries after this many seconds per point, >= 20 queries (default: 2)")
    s.add_argument("--batch-budget", type=float, default=4.0,
                   help="a batch point projected to take longer runs fewer queries, >= 50 (default: 4 s; 0: off)")
    s.add_argument("--r1-nq", type=int, default=500, help="queries for the k=64 Recall@1@k search (default: 500)")
    s.add_argument("--no-progress", action="store_true",
                   help="no tqdm progress bar (there is none anyway when stderr is not a terminal)")
    s.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out: keep its finished configs, run the rest")
    s.add_argument("--all-points", action="store_true",
                   help="the plot also shows every measured point, not only each method's Pareto line")

    r = sub.add_parser("summarize", help="rewrite summary.md and recall_qps.png from DIR/results.json")
    r.add_argument("dir", help="a sweep --out directory")
    r.add_argument("--all-points", action="store_true", help="plot every point, not only Pareto lines")

    c = sub.add_parser("compare", help="QPS ratios B/A of two sweeps at recall thresholds, per method")
    c.add_argument("a", help="results.json (or its folder) of the baseline sweep A")
    c.add_argument("b", help="results.json (or its folder) of sweep B")
    c.add_argument("--thresholds", default="0.8,0.9,0.95,0.99", help="recall thresholds (default: %(default)s)")
    c.add_argument("--qps", choices=("batch", "single", "both"), default="both",
                   help="which QPS to compare (default: %(default)s)")

    ds = sub.add_parser("datasets", help="known data set names, their addresses and which are cached")
    ds.add_argument("--data-dir", default=None, help="data folder (default: $VQINDEX_DATA or the user cache)")

    w = sub.add_parser("warmup", help="compile every numba kernel once (fills the numba cache)")
    w.add_argument("--quiet", action="store_true", help="print only the total time")

    sub.add_parser("config", help="print vqindex.show_config(): versions, native backend, CPU, numba cache")

    d = sub.add_parser("distortion", help="codec distortion (vNMSE, IP error, bias) vs bits, ours and FAISS")
    d.add_argument("--dataset", required=True, help="data set name or path, or random:<d>")
    d.add_argument("--bits", default="1,2,3,4", help="bit widths (default: %(default)s)")
    d.add_argument("--n", type=int, default=20000, help="vectors encoded (default: 20000)")
    d.add_argument("--nq", type=int, default=100, help="queries for the IP error (default: 100)")
    d.add_argument("--codecs", default=None, help="codec families (default: vqindex.bench.codecs')")
    d.add_argument("--threads", type=int, default=1)
    d.add_argument("--no-faiss", action="store_true", help="skip FAISS's codecs")
    d.add_argument("--out", default=None, help="directory for distortion.json/.md/.png")

    e = sub.add_parser("encode-time", help="encode throughput vs dimension (random unit vectors)")
    e.add_argument("--dims", default="200,1536,3072", help="dimensions (default: %(default)s)")
    e.add_argument("--n", type=int, default=100000, help="vectors encoded per timing (default: 100000)")
    e.add_argument("--bits", default="4", help="bit widths (default: 4)")
    e.add_argument("--codecs", default=None, help="codec families (default: vqindex.bench.codecs')")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--repeat", type=int, default=3)
    e.add_argument("--no-faiss", action="store_true", help="skip FAISS's codecs")
    e.add_argument("--out", default=None, help="directory for encode_time.json/.md/.png")

    sc = sub.add_parser("scale", help="ShardedIndex on a local Ray vs the plain index (needs the distributed extra)")
    sc.add_argument("--dataset", required=True, help="data set name or HDF5 path")
    sc.add_argument("--shards", default="1,2,4", help="shard counts (default: %(default)s)")
    sc.add_argument("--n", type=int, default=None, help="first n train vectors (default: all)")
    sc.add_argument("--nq", type=int, default=1000, help="batch queries (default: 1000)")
    sc.add_argument("--k", type=int, default=10)
    sc.add_argument("--index", default="IVF1024,EDEN4,RFlat", help="index string (default: %(default)s)")
    sc.add_argument("--nprobe", type=int, default=32)
    sc.add_argument("--k-factor", type=float, default=2.0)
    sc.add_argument("--single-queries", type=int, default=300, help="one-query-per-call searches (default: 300)")
    sc.add_argument("--threads", type=int, default=1, help="search threads per index / shard (default: 1)")
    sc.add_argument("--address", default=None, help="Ray address (default: a local Ray)")
    sc.add_argument("--out", default=None, help="directory for scale.json/.md")
    return p


# ---------------------------------------------------------------------------- sweep
def _cmd_sweep(a):
    from .bench import sweep as B
    if a.threads < 1 or (a.build_threads is not None and a.build_threads < 1):
        raise CLIError("--threads and --build-threads must be >= 1")
    if a.k < 1 or a.k > 64:
        raise CLIError(f"--k must be in 1..64, got {a.k}")
    configs = None
    if a.configs:
        try:
            configs = [B.parse_config_spec(c) for c in a.configs]
        except ValueError as e:
            raise CLIError(str(e)) from None
    methods = _csv(a.methods)
    bad = [m for m in methods if m.lower() not in METHODS]
    if bad or not methods:
        raise CLIError(f"unknown method(s) {', '.join(bad) or '(none)'}; known: {', '.join(METHODS)}")
    if a.resume and not a.out:
        raise CLIError("--resume needs --out (the folder of the sweep to continue)")
    opts = B.SweepOptions(dataset=a.dataset, n=a.n, methods=tuple(methods), threads=a.threads,
                          build_threads=a.build_threads, k=a.k, out=a.out, configs=configs,
                          quick=a.quick, nq=a.nq, nq_slow=a.nq_slow, single_cap=a.single_cap,
                          single_cap_slow=a.single_cap_slow, single_budget_s=a.single_budget,
                          batch_budget_s=a.batch_budget,
                          r1_nq=a.r1_nq, progress=not a.no_progress, resume=a.resume,
                          all_points=a.all_points, metric=a.metric)
    try:
        report = B.run_sweep(opts)
    except B.SweepError as e:
        raise CLIError(str(e)) from None
    if report["failures"]:
        print(f"{PROG}: {len(report['failures'])} configuration(s) failed:", file=sys.stderr)
        for msg in report["failures"]:
            print(f"  {msg}", file=sys.stderr)
        return 1
    return 0


def _cmd_summarize(a):
    from .bench import sweep as B
    path = os.path.join(a.dir, "results.json")
    if not os.path.isfile(path):
        raise CLIError(f"{path} not found")
    with open(path) as f:
        report = json.load(f)
    with open(os.path.join(a.dir, "summary.md"), "w") as f:
        f.write(B.summary_markdown(report))
    written = "summary.md"
    try:
        B.plot_recall_qps(report, os.path.join(a.dir, "recall_qps.png"), all_points=a.all_points)
        written += ", recall_qps.png"
    except ImportError as e:
        print(f"note: no plot ({e}; pip install matplotlib)")
    print(f"wrote {a.dir}/{written}")
    return 0


# ---------------------------------------------------------------------------- codecs.py
def _run_codecs(argv):
    from .bench import codecs as mod
    try:
        return mod.main(argv)
    except SystemExit as e:  # argparse / codec-name errors inside codecs.py
        if e.code in (0, None):
            return {"rows": [], "summary": [], "notes": []}
        raise CLIError(str(e.code) if not isinstance(e.code, int) else "the codec benchmark failed") from None


def _family_key(r):
    return f"{r['impl']}: {r.get('family') or r['codec']}"


def _plot_distortion(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("vnmse", "vNMSE", True), ("ip_err_est", "IP error (estimator) x d", True),
              ("ip_err", "IP error (decoded) x d", True), ("beta", "bias: <x_hat,x>/|x|^2", False)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5))
    groups = {}
    for r in rows:
        groups.setdefault(_family_key(r), []).append(r)
    for ax, (key, label, logy) in zip(axes, panels):
        for g, rs in groups.items():
            pts = sorted((r["b"], r[key]) for r in rs if r.get(key) is not None and r.get("b"))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if g.startswith("vq") else "s",
                        linestyle="-" if g.startswith("vq") else "--", label=g, markersize=4)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("bits per coordinate (b)")
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _md_table(rows, cols):
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        vals = []
        for _, k in cols:
            v = r.get(k)
            vals.append("-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)))
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def _write_report(out, stem, payload, md, plot):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(payload, f, indent=1, default=str)
    with open(os.path.join(out, f"{stem}.md"), "w") as f:
        f.write(md + "\n")
    written = f"{stem}.json, {stem}.md"
    try:
        plot(os.path.join(out, f"{stem}.png"))
        written += f", {stem}.png"
    except ImportError as e:
        print(f"note: no plot ({e}; pip install matplotlib)")
    print(f"wrote {out}/{written}")


def _cmd_distortion(a):
    bits = _ints(a.bits)
    if not bits or any(b < 1 or b > 9 for b in bits):
        raise CLIError(f"--bits must be integers in 1..9, got {a.bits!r}")
    if not a.dataset.startswith("random:"):
        from .bench.sweep import load_dataset
        load_dataset(a.dataset, progress=False)  # fail early with the loader's one-line error
    argv = ["--datasets", a.dataset, "--bits", ",".join(map(str, bits)), "--n", str(a.n),
            "--nq", str(a.nq), "--threads", str(a.threads), "--no-big-encode", "--repeat", "1"]
    if a.codecs:
        argv += ["--codecs", a.codecs]
    if a.no_faiss:
        argv += ["--no-faiss"]
    if a.out:
        argv += ["--out", a.out]
    res = _run_codecs(argv)
    if not res["rows"]:
        raise CLIError(f"no rows produced for {a.dataset!r}: " + "; ".join(res.get("notes", [])))
    if a.out:
        cols = [("impl", "impl"), ("codec", "codec"), ("b", "b"), ("bits/dim", "bits_per_dim"),
                ("vNMSE", "vnmse"), ("IPerr", "ip_err"), ("IPerr est", "ip_err_est"), ("beta", "beta")]
        md = (f"# Distortion: {a.dataset}, n={a.n}, bits {a.bits}\n\n" + _md_table(res["rows"], cols)
              + "\n\n(vqindex.bench.codecs; beta = mean <x_hat,x>/|x|^2, 1 = unbiased)\n"
              + "".join(f"\n- {s}" for s in res.get("notes", [])))
        _write_report(a.out, "distortion", {"args": vars(a), **res}, md,
                      lambda p: _plot_distortion(res["rows"], p, f"{a.dataset}: distortion vs bits"))
    return 0


def _plot_encode(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 5))
    groups = {}
    for r in rows:
        groups.setdefault(f"{r['impl']}: {r['codec']}", []).append(r)
    for g, rs in groups.items():
        pts = sorted((r["d"], r["encode_vps"]) for r in rs)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if g.startswith("vq") else "s",
                linestyle="-" if g.startswith("vq") else "--", label=g)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("dimension d")
    ax.set_ylabel("encoded vectors / s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cmd_encode_time(a):
    dims = _ints(a.dims)
    bits = _ints(a.bits)
    if not dims or any(x < 1 for x in dims) or a.n < 1:
        raise CLIError("--dims must be positive integers and --n >= 1")
    argv = ["--datasets", ",".join(f"random:{x}" for x in dims), "--bits", ",".join(map(str, bits)),
            "--n", str(min(a.n, 2000)), "--n-time", str(a.n), "--nq", "20", "--threads", str(a.threads),
            "--repeat", str(a.repeat), "--no-big-encode"]
    if a.codecs:
        argv += ["--codecs", a.codecs]
    if a.no_faiss:
        argv += ["--no-faiss"]
    res = _run_codecs(argv)
    rows = [{k: r.get(k) for k in ("impl", "codec", "b", "d", "n_time", "threads", "bits_per_dim",
                                   "encode_vps", "decode_vps", "encode_inner_vps")} for r in res["rows"]]
    for r in rows:
        r["encode_s"] = r["n_time"] / r["encode_vps"] if r["encode_vps"] else None
    print("\n" + _md_table(rows, [("impl", "impl"), ("codec", "codec"), ("d", "d"), ("n", "n_time"),
                                  ("encode s", "encode_s"), ("enc/s", "encode_vps"),
                                  ("enc/s w/o rotation", "encode_inner_vps")]))
    if a.out:
        md = (f"# Encode time: n={a.n}, dims {a.dims}, bits {a.bits}, {a.threads} thread(s), best of "
              f"{a.repeat}\n\n" + _md_table(rows, [("impl", "impl"), ("codec", "codec"), ("d", "d"),
                                                   ("n", "n_time"), ("encode s", "encode_s"),
                                                   ("enc/s", "encode_vps"), ("dec/s", "decode_vps"),
                                                   ("enc/s w/o rotation", "encode_inner_vps")])
              + "\n\n(vqindex.bench.codecs; FAISS time includes its dense RandomRotationMatrix)\n")
        _write_report(a.out, "encode_time", {"args": vars(a), "rows": rows, "notes": res.get("notes", [])},
                      md, lambda p: _plot_encode(rows, p))
    return 0


# ---------------------------------------------------------------------------- compare, datasets, warmup
def _cmd_compare(a):
    from .bench import compare as C
    try:
        thr = [float(t) for t in _csv(a.thresholds)]
    except ValueError:
        raise CLIError(f"--thresholds must be comma-separated numbers, got {a.thresholds!r}") from None
    if not thr or any(not 0 < t <= 1 for t in thr):
        raise CLIError(f"--thresholds must lie in (0, 1], got {a.thresholds!r}")
    ra, rb = C.load_results(a.a), C.load_results(a.b)
    qkeys = {"batch": ("qps_batch",), "single": ("qps_single",), "both": ("qps_batch", "qps_single")}[a.qps]
    print(C.compare_markdown(ra, rb, C.compare(ra, rb, thr, qkeys)), end="")
    return 0


def _cmd_datasets(a):
    from pathlib import Path

    from . import datasets
    root = Path(a.data_dir).expanduser() if a.data_dir else datasets.data_dir()
    print(f"data directory: {root} (set VQINDEX_DATA or --data-dir to change it)")
    print(f"{'name':<34} {'metric':<9} {'dim':>5}  {'cached':<6}  address")
    for name in datasets.list_datasets():
        e = datasets.REGISTRY[name]
        cached = (root / e["file"]).is_file()
        where = e.get("url") or e.get("package") or "(no download address: project data folder)"
        print(f"{name:<34} {e['metric']:<9} {e.get('dim') or '?':>5}  {'yes' if cached else 'no':<6}  {where}")
    print("also accepted: a path to an .hdf5 (ann-benchmarks layout), .npy, .fvecs/.bvecs, GloVe .txt "
          "file or a folder of parquet embeddings (raw vectors default to euclidean; --metric is not "
          "needed for .hdf5 files, which carry their own)")
    return 0


def _cmd_warmup(a):
    import time

    from .bench.warmup import warmup
    t0 = time.perf_counter()
    rows = warmup(log=None if a.quiet else print)
    print(f"warmup: {len(rows)} index builds and searches compiled in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_config(a):
    from ._config import show_config
    show_config()
    return 0


COMMANDS = {"sweep": _cmd_sweep, "summarize": _cmd_summarize, "compare": _cmd_compare,
            "datasets": _cmd_datasets, "distortion": _cmd_distortion,
            "encode-time": _cmd_encode_time, "warmup": _cmd_warmup, "config": _cmd_config}


def _cmd_scale(a):
    from .distributed.bench import run_cli
    return run_cli(a)


COMMANDS["scale"] = _cmd_scale


# ---------------------------------------------------------------------------- main
def main(argv=None):
    """Entry point; returns the exit status (0 ok, 1 a configuration failed, 2 user error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        if not argv or argv[0] in ("-h", "--help"):
            parser.print_help()
            return 0 if argv else 2
        a = parser.parse_args(argv)
        if a.command is None:
            raise CLIError(f"a command is needed: {', '.join(COMMANDS)}")
        return COMMANDS[a.command](a)
    except CLIError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, FileNotFoundError) as e:
        from .datasets import DatasetError
        if isinstance(e, DatasetError) or isinstance(e, (ValueError, FileNotFoundError)):
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"{PROG}: error: {msg}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
